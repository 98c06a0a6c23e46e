-- autoprov store schema, version 2: sealed secrets. An order's secret values (masked in its
-- JSON record) are kept sealed beside it (XChaCha20-Poly1305 under a host key, the order id
-- and the slot as associated data), as {"<slot>": {"key_id", "nonce", "ciphertext"}} with
-- the bytes in hex. The column is set to NULL in the write that takes the order out of the
-- states that keep secrets (Pending, AwaitingApproval, Errored).
ALTER TABLE orders ADD COLUMN sealed jsonb;
