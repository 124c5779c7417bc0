-- End-to-end encryption: the keys devices publish, the messages they send
-- each other, the changes other users are told about, and key backups.
-- The server stores and relays; it never holds a key that decrypts anything.

-- A device's identity keys, as the device signed them. Gone with the device.
CREATE TABLE device_keys (
    user_id   text NOT NULL,
    device_id text NOT NULL,
    keys      jsonb NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- One-time keys: each is handed out to exactly one claimer, then deleted.
CREATE TABLE one_time_keys (
    user_id   text NOT NULL,
    device_id text NOT NULL,
    algorithm text NOT NULL,            -- the part of the key id before the colon
    key_id    text NOT NULL,            -- <algorithm>:<id>
    key       jsonb NOT NULL,
    PRIMARY KEY (user_id, device_id, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX one_time_keys_by_algorithm ON one_time_keys (user_id, device_id, algorithm, key_id);

-- Fallback keys: one per algorithm, handed out when no one-time key is left.
CREATE TABLE fallback_keys (
    user_id   text NOT NULL,
    device_id text NOT NULL,
    algorithm text NOT NULL,
    key_id    text NOT NULL,
    key       jsonb NOT NULL,
    used      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, device_id, algorithm),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- Cross-signing keys: master, self_signing and user_signing, one of each per user.
CREATE TABLE cross_signing_keys (
    user_id  text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    key_type text NOT NULL,             -- master, self_signing or user_signing
    keys     jsonb NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded after the fact (keys/signatures/upload), merged into
-- the signed key when it is queried: signatures by the key's owner for
-- everyone, a signature by another user for that user alone.
CREATE TABLE key_signatures (
    target_user   text NOT NULL,
    target_key_id text NOT NULL,        -- a device id, or a cross-signing key's public part
    signer_user   text NOT NULL,
    signer_key_id text NOT NULL,        -- ed25519:<device id or public key>
    signature     text NOT NULL,
    PRIMARY KEY (target_user, target_key_id, signer_user, signer_key_id)
);

-- Each change of a user's devices or keys takes a stream position; users
-- who share a room with them learn it through device_lists.changed.
CREATE TABLE device_list_changes (
    user_id text NOT NULL,
    stream  bigint NOT NULL,
    PRIMARY KEY (user_id, stream)
);
CREATE INDEX device_list_changes_by_stream ON device_list_changes (stream);

-- To-device messages waiting for their device. A message is delivered in
-- every sync answer after its position until the device acknowledges it
-- (comes back with a token at or past it); then it is deleted.
CREATE TABLE to_device_messages (
    user_id   text NOT NULL,
    device_id text NOT NULL,
    stream    bigint NOT NULL,          -- all messages of one request share it
    sender    text NOT NULL,
    type      text NOT NULL,
    content   jsonb NOT NULL,
    PRIMARY KEY (user_id, device_id, stream),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX to_device_messages_by_stream ON to_device_messages (stream);

-- Idempotent sendToDevice: a retried transaction id sends nothing again.
CREATE TABLE to_device_txns (
    user_id    text NOT NULL,
    device_id  text NOT NULL,
    txn_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Server-side key backup: versions of a user's backup, the newest live one current.
CREATE TABLE key_backup_versions (
    user_id   text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    version   bigint NOT NULL,
    algorithm text NOT NULL,
    auth_data jsonb NOT NULL,
    etag      bigint NOT NULL DEFAULT 0,   -- moves on every change of the backed-up keys
    deleted   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE key_backup_sessions (
    user_id             text NOT NULL,
    version             bigint NOT NULL,
    room_id             text NOT NULL,
    session_id          text NOT NULL,
    first_message_index bigint NOT NULL,
    forwarded_count     bigint NOT NULL,
    is_verified         boolean NOT NULL,
    session_data        jsonb NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id),
    FOREIGN KEY (user_id, version) REFERENCES key_backup_versions (user_id, version) ON DELETE CASCADE
);
