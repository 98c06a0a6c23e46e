-- autoprov store schema, version 5: room in each page of orders for updated rows.
--
-- A worker rewrites an order's row several times without touching an indexed column (the
-- claim's lease, the attempt's intent). With full pages each such update puts the new row
-- on another page and adds an entry to every index, which later claims must step over; with
-- room left on the page PostgreSQL updates in place (a HOT update: no new index entries).
-- Applies to pages written from now on (an existing table's pages fill as they are rewritten).
ALTER TABLE orders SET (fillfactor = 60);
