-- SQLite's 0013 keeps the URL bindings in one B-tree (a table without rowid). PostgreSQL's tables
-- are heaps beside their primary-key index either way: nothing changes here. The file keeps the
-- two folders' versions in step.
SELECT 1;
