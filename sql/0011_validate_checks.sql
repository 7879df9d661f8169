-- The base58 CHECKs 0009 added NOT VALID, validated over the existing rows. VALIDATE
-- CONSTRAINT takes SHARE UPDATE EXCLUSIVE: the scan of a large transactions table runs
-- while the daemon keeps reading and writing (0009's own transaction only changed the
-- catalog).
ALTER TABLE transactions VALIDATE CONSTRAINT transactions_signature_base58;
ALTER TABLE users VALIDATE CONSTRAINT users_wallet_address_base58;
ALTER TABLE agents VALIDATE CONSTRAINT agents_wallet_address_base58;
