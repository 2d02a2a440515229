-- agentd schema, step 8: embeddings of tables' vectorized columns. One vector per (row,
-- vectorized column), little-endian f32s, with the model that made it. Written in the
-- transaction that marks the row DONE (only if the row did not change meanwhile); a row's
-- vectors go with it (a trigger on each rows table), a table's with the table.

CREATE TABLE table_vectors (
    table_id  TEXT NOT NULL,
    row_id    INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    model     TEXT NOT NULL,
    vector    BLOB NOT NULL,
    PRIMARY KEY (table_id, row_id, position)
);
