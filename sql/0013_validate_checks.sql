-- The base58 CHECKs 0009, 0011 and 0012 added NOT VALID, validated over the existing
-- rows. VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE: the scan of a large
-- transactions table runs while the daemon keeps reading and writing (those migrations
-- only changed the catalog).
ALTER TABLE transactions VALIDATE CONSTRAINT transactions_signature_base58;
ALTER TABLE users VALIDATE CONSTRAINT users_wallet_address_base58;
ALTER TABLE agents VALIDATE CONSTRAINT agents_wallet_address_base58;
