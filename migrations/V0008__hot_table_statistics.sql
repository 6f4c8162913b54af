-- Small statistics samples on the tables the hot paths append to. Autovacuum ANALYZEs a table
-- each time a tenth of it changed; with the default target (100) it samples 30,000 rows and
-- sorts every column's values, text under the database's collation. For a redemptions table of
-- 300,000 rows that took 0.33 s of CPU (ledger_transfers 0.21 s, capacity_holds and
-- ledger_holds 0.1 s each), back to back, and on a two-core machine running RequestCompute at
-- 70 % of its maximum those seconds were the whole latency tail: p99 29-72 ms in runs where
-- they fell inside the measured window, 11-14 ms with the samples set here (bench/redemption,
-- docs/BENCHMARKS.md).
--
-- Nothing the hot paths run depends on these statistics: their statements look rows up by key
-- one by one (LATERAL ... LIMIT 1; V0006's checks probe by primary key with sequential scans,
-- hash and merge joins off). What does (listings by program, enterprise,
-- datacenter, state or time; payouts; VerifyLedger) filters on few, coarse columns, for which a
-- target of 10 (a 3,000-row sample, ten most common values, ten histogram buckets) serves as
-- well. Columns nothing filters, joins or sorts on get no statistics at all (target 0).
-- ANALYZE of each table then takes 0.03-0.04 s.
--
-- A column added to these tables later gets the default target; a schema test
-- (RedemptionSchemaTest.HotTablesSampleSmall) asks for one here.
DO $$
DECLARE
  col record;
BEGIN
  FOR col IN
    SELECT c.relname, a.attname,
           CASE WHEN (c.relname, a.attname) IN (
                  ('redemptions', 'accelerator_model'), ('redemptions', 'preferred_region_prefix'),
                  ('redemptions', 'state_reason'), ('redemptions', 'voucher_key_id'),
                  ('redemptions', 'voucher_signature'), ('redemptions', 'request_scope'),
                  ('redemptions', 'request_id'), ('redemptions', 'request_hash'),
                  ('ledger_transfers', 'request_scope'), ('ledger_transfers', 'request_id'),
                  ('ledger_transfers', 'metadata'),
                  ('capacity_holds', 'owner'), ('capacity_holds', 'purpose'),
                  ('usage_records', 'usage_id'), ('usage_records', 'request_hash'),
                  ('idempotency_keys', 'request_id'), ('idempotency_keys', 'request_hash'),
                  ('idempotency_keys', 'response'))
                THEN 0 ELSE 10 END AS target
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relnamespace = 'public'::regnamespace
      AND c.relname IN ('redemptions', 'ledger_transfers', 'ledger_holds', 'capacity_holds',
                        'usage_records', 'idempotency_keys')
      AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STATISTICS %s', col.relname, col.attname,
                   col.target);
  END LOOP;
END
$$;
