CREATE TABLE items (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    quantity   INTEGER NOT NULL CHECK (quantity BETWEEN 0 AND 1000000),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX items_created_at ON items (created_at);
