-- The media repository. The bytes of each upload live in a file under the
-- media directory (named by media id); this table says who uploaded what,
-- its type, name and size. A row made by POST /_matrix/media/v1/create has
-- no content yet (uploaded_at null) until its uploader PUTs it.
CREATE TABLE media (
    media_id     text PRIMARY KEY,
    uploader     text NOT NULL,
    content_type text,                 -- null until the content arrives
    upload_name  text,                 -- the filename the uploader gave, if any
    size         bigint,               -- bytes; null until the content arrives
    created_at   timestamptz NOT NULL DEFAULT now(),
    uploaded_at  timestamptz,          -- null while a created id awaits its content
    expires_at   timestamptz           -- a created id still without content by then is void
);
-- A user's quota (the sum of their uploads) and their ids awaiting content.
CREATE INDEX media_by_uploader ON media (uploader);

-- Thumbnails made so far, one file each, keyed by the size class asked for.
CREATE TABLE media_thumbnails (
    media_id     text NOT NULL REFERENCES media (media_id) ON DELETE CASCADE,
    width        integer NOT NULL,
    height       integer NOT NULL,
    method       text NOT NULL,        -- 'scale' or 'crop'
    content_type text NOT NULL,
    size         bigint NOT NULL,
    PRIMARY KEY (media_id, width, height, method)
);
