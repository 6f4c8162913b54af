-- A redemption is its RequestCompute's idempotency record. RequestCompute stored each placed
-- response twice: the redemption, and an idempotency_keys row holding the encoded response
-- (the redemption as placed, signed voucher included) under the same (scope, request id) that
-- redemptions_request_once already makes unique: a row more per placement, its text key's index
-- entry, and about 550 bytes of response sent as hex and written again (bench/redemption:
-- RequestCompute 4,690/s before, 6,060/s after, docs/BENCHMARKS.md). Now the redemption
-- carries the request's hash, and a retry is answered from the redemption, as it was when
-- placed (its state, remaining hold and settled totals then), so the bytes are those of the
-- first answer.
--
-- Rows placed before this migration have their hash copied from their idempotency_keys row
-- (which stays: that table is append-only); a redemption that replaces a rejected one was
-- placed by the rejection, under the rejection's key, and has no hash of its own. Their retries
-- are answered from the redemption too; their times, kept to the microsecond, can differ from
-- the first answer's below the microsecond (answers are now made from microsecond times).
ALTER TABLE redemptions ADD COLUMN request_hash text;

ALTER TABLE redemptions DISABLE TRIGGER redemptions_guard;
UPDATE redemptions r SET request_hash = k.request_hash
FROM idempotency_keys k
WHERE k.scope = r.request_scope AND k.request_id = r.request_id AND r.replaces IS NULL;
ALTER TABLE redemptions ENABLE TRIGGER redemptions_guard;

-- The hash is one of the terms that never change.
CREATE OR REPLACE FUNCTION redemptions_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: redemptions are never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF ROW(NEW.id, NEW.program_id, NEW.issuer_id, NEW.uscc, NEW.datacenter_id, NEW.pool_id,
         NEW.accelerator_model, NEW.fp8_required, NEW.domestic_required, NEW.min_memory_gib,
         NEW.max_price_fen_per_gpu_hour, NEW.preferred_region_prefix, NEW.gpus, NEW.hours, NEW.price_fen_per_gpu_hour, NEW.ratio_bps, NEW.settlement_style,
         NEW.estimated_bill_fen, NEW.held_fen, NEW.hold_transfer_id, NEW.capacity_hold_id,
         NEW.expires_at, NEW.replaces, NEW.generation, NEW.voucher_key_id,
         NEW.voucher_signature, NEW.request_scope, NEW.request_id, NEW.request_hash, NEW.created_at)
     IS DISTINCT FROM
     ROW(OLD.id, OLD.program_id, OLD.issuer_id, OLD.uscc, OLD.datacenter_id, OLD.pool_id,
         OLD.accelerator_model, OLD.fp8_required, OLD.domestic_required, OLD.min_memory_gib,
         OLD.max_price_fen_per_gpu_hour, OLD.preferred_region_prefix, OLD.gpus, OLD.hours, OLD.price_fen_per_gpu_hour, OLD.ratio_bps, OLD.settlement_style,
         OLD.estimated_bill_fen, OLD.held_fen, OLD.hold_transfer_id, OLD.capacity_hold_id,
         OLD.expires_at, OLD.replaces, OLD.generation, OLD.voucher_key_id,
         OLD.voucher_signature, OLD.request_scope, OLD.request_id, OLD.request_hash, OLD.created_at) THEN
    RAISE EXCEPTION 'REDEMPTION_IMMUTABLE: the terms of redemption % never change', OLD.id
      USING ERRCODE = 'VC040';
  END IF;
  IF NOT ((OLD.state = 1 AND NEW.state IN (2, 5, 6, 7))
          OR (OLD.state = 2 AND NEW.state IN (3, 4, 5))
          OR (OLD.state = 3 AND NEW.state IN (3, 4))
          OR (OLD.state = 7 AND NEW.state = 7 AND OLD.replaced_by IS NULL
              AND NEW.replaced_by IS NOT NULL)) THEN
    RAISE EXCEPTION 'REDEMPTION_STATE_INVALID: redemption % cannot go from state % to %',
      OLD.id, OLD.state, NEW.state USING ERRCODE = 'VC041';
  END IF;
  IF NEW.gpu_seconds < OLD.gpu_seconds OR NEW.billed_fen < OLD.billed_fen
     OR NEW.subsidy_fen < OLD.subsidy_fen OR NEW.usage_records < OLD.usage_records
     OR (OLD.replaced_by IS NOT NULL AND NEW.replaced_by IS DISTINCT FROM OLD.replaced_by) THEN
    RAISE EXCEPTION 'REDEMPTION_IMMUTABLE: settled totals of redemption % only grow', OLD.id
      USING ERRCODE = 'VC040';
  END IF;
  RETURN NEW;
END
$$;
