-- Batches of routed ids are stored compressed from now on (zstd; see `Stored` in
-- src/store/digests.rs): a million ids were 13 MB of run log, written in the route step's
-- transaction and copied again by the checkpoint after it, and routed ids are never pruned;
-- compressed they are 0.7 MB. `ids` holds either a JSON array as text (batches stored before)
-- or a compressed JSON array as a blob; the reader tells them apart by zstd's frame magic.
-- SQLite cannot decompress, so the view that listed one row per id cannot list the new batches:
-- it goes, rather than list some ids and not others. `cxflow routed` lists them.
DROP VIEW route_routed;
