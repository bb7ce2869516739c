//! Identifiers. Every id is a 64-bit integer that travels as a JSON *string*, since
//! JavaScript numbers lose precision past 2^53 (DESIGN.md §3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $brand:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, ts_rs::TS)]
        // Branded in TypeScript: a plain string is not an id, and a user id cannot
        // be passed where a conversation id is expected.
        #[ts(type = $brand)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(IdVisitor).map($name)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

id_type!(
    /// A user.
    UserId,
    "string & { readonly __brand: \"UserId\" }"
);
id_type!(
    /// A direct or group conversation.
    ConversationId,
    "string & { readonly __brand: \"ConversationId\" }"
);
id_type!(
    /// A message: a Snowflake (41 bits of milliseconds, 10 of node id, 12 of sequence),
    /// so ids sort by time.
    MessageId,
    "string & { readonly __brand: \"MessageId\" }"
);

/// The ids the schema calls valid: decimal strings below 9,223,000,000,000,000,000
/// (the pattern's way of staying under `i64::MAX`), leading zeros allowed as the
/// server parses them.
pub const ID_PATTERN: &str =
    "^0*([0-9]{1,18}|[1-8][0-9]{18}|9[01][0-9]{17}|92[01][0-9]{16}|922[0-2][0-9]{15})$";

fn id_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some("a 64-bit identifier as a decimal string"))
        .pattern(Some(ID_PATTERN))
        .examples([serde_json::json!("7212136519393280")])
        .into()
}

/// Accepts an id as a decimal string (what we send) or as a non-negative integer
/// (lenient for hand-written scripts); anything else is a clear error.
struct IdVisitor;

impl serde::de::Visitor<'_> for IdVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an id as a decimal string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
        match v.parse::<i64>() {
            Ok(id) if id >= 0 => Ok(id),
            _ => Err(E::custom(format!("`{v}` is not an id"))),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("id out of range"))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        if v >= 0 {
            Ok(v)
        } else {
            Err(E::custom("ids are never negative"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_strings_and_parse_back() {
        let id = MessageId(9_007_199_254_740_993);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"9007199254740993\"");
        assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), id);
    }

    #[test]
    fn garbage_and_negative_ids_are_refused() {
        assert!(serde_json::from_str::<UserId>("\"abc\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"-4\"").is_err());
        assert!(serde_json::from_str::<UserId>("-4").is_err());
        assert!(serde_json::from_str::<UserId>("null").is_err());
        assert_eq!(serde_json::from_str::<UserId>("12").unwrap(), UserId(12));
    }
}
