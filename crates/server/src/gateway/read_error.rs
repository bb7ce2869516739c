//! Why a frame could not be read, as the close code RFC 6455 and DESIGN.md §5 give
//! it. tungstenite enforces the protocol (masking, reserved bits and opcodes, control
//! frame rules, UTF-8, the size limits) and reports a violation as an error that
//! axum wraps; this module is the one place that turns those errors into a close, so
//! a client learns what it did wrong instead of a plain 1000.

use chat_protocol::close;
use tungstenite::error::{CapacityError, Error, ProtocolError};

use super::Close;

/// Closing a connection that ended normally or is already gone: nobody reads it.
const NORMAL: Close = (1000, "bye");

/// The close for a read that failed with `error` (as axum hands it over).
pub fn close_for_read_error(error: &axum::Error) -> Close {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(error) = current.downcast_ref::<Error>() {
            return close_for(error);
        }
        source = current.source();
    }
    NORMAL
}

/// The close for a tungstenite read error.
pub fn close_for(error: &Error) -> Close {
    match error {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            (close::TOO_LARGE, "frame or message too large")
        }
        Error::Utf8(_) => (close::INVALID_UTF8, "a text frame must be UTF-8"),
        Error::Protocol(violation) => close_for_violation(violation),
        Error::AttackAttempt | Error::Capacity(_) => (close::PROTOCOL_ERROR, "protocol error"),
        // The socket failed or closed under us: no close frame will get through.
        _ => NORMAL,
    }
}

fn close_for_violation(violation: &ProtocolError) -> Close {
    let reason = match violation {
        ProtocolError::ResetWithoutClosingHandshake
        | ProtocolError::SendAfterClosing
        | ProtocolError::ReceivedAfterClosing => return NORMAL,
        ProtocolError::UnmaskedFrameFromClient => "client frames must be masked",
        ProtocolError::NonZeroReservedBits => "reserved bits must be zero",
        ProtocolError::UnknownControlFrameType(_)
        | ProtocolError::UnknownDataFrameType(_)
        | ProtocolError::InvalidOpcode(_) => "reserved opcode",
        ProtocolError::FragmentedControlFrame => "control frames must not be fragmented",
        ProtocolError::ControlFrameTooBig => "control frames carry at most 125 bytes",
        ProtocolError::UnexpectedContinueFrame | ProtocolError::ExpectedFragment(_) => {
            "bad fragmentation"
        }
        ProtocolError::InvalidCloseSequence => "invalid close frame",
        _ => "protocol error",
    };
    (close::PROTOCOL_ERROR, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_of_read_error_gets_its_close_code() {
        let too_long = Error::Capacity(CapacityError::MessageTooLong {
            size: 70_000,
            max_size: 65_536,
        });
        assert_eq!(close_for(&too_long).0, close::TOO_LARGE);
        assert_eq!(close_for(&Error::Utf8("bad".into())).0, close::INVALID_UTF8);
        for violation in [
            ProtocolError::UnmaskedFrameFromClient,
            ProtocolError::NonZeroReservedBits,
            ProtocolError::UnknownControlFrameType(11),
            ProtocolError::UnknownDataFrameType(3),
            ProtocolError::FragmentedControlFrame,
            ProtocolError::ControlFrameTooBig,
            ProtocolError::UnexpectedContinueFrame,
        ] {
            assert_eq!(
                close_for(&Error::Protocol(violation)).0,
                close::PROTOCOL_ERROR
            );
        }
        let reset = Error::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(close_for(&reset), NORMAL);
        assert_eq!(close_for(&Error::ConnectionClosed), NORMAL);
    }

    #[test]
    fn the_error_is_found_inside_axums_wrapper() {
        let wrapped = axum::Error::new(Error::Utf8("bad".into()));
        assert_eq!(close_for_read_error(&wrapped).0, close::INVALID_UTF8);
    }
}
