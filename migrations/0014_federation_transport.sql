-- Federation transport: other servers' signing keys, the durable outgoing
-- queue (one ordered queue per destination server) and the transactions
-- received, by origin and transaction id, so that a retried one is answered
-- again without being applied twice.

CREATE TABLE federation_server_keys (
    server_name    text NOT NULL,
    key_id         text NOT NULL,          -- "ed25519:..."
    verify_key     text NOT NULL,          -- unpadded base64
    valid_until_ts bigint NOT NULL,        -- ms; an old (expired) key keeps its expired_ts here
    fetched_ts     bigint NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- What waits to be sent, in order (id) per destination. A row gets the id of
-- the transaction it goes out in when its batch is first formed; the batch
-- is then retried under the same transaction id until the destination
-- accepts it, and its rows are deleted.
CREATE TABLE federation_outbox (
    id          bigserial PRIMARY KEY,
    destination text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('pdu', 'edu')),
    body        jsonb NOT NULL,
    txn_id      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX federation_outbox_by_destination ON federation_outbox (destination, id);

CREATE TABLE federation_received_txns (
    origin      text NOT NULL,
    txn_id      text NOT NULL,
    response    jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, txn_id)
);
