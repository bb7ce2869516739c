-- Each user's choices about the training dataset (DESIGN.md §10), kept as a history:
-- a message enters the dataset only if its author allowed it when it was sent, and
-- no choice has withdrawn it since.
CREATE TABLE dataset_consents (
    user_id BIGINT NOT NULL REFERENCES users (id),
    at_ms   BIGINT NOT NULL,
    allowed BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, at_ms)
);
