-- Access tokens are now written as v2 ("v2:<key id>:iv:tag:ciphertext", bound to their row;
-- src/utils/encryption.ts). v1 values stay valid until `npm run rotate-keys` rewrites them.
ALTER TABLE phone_numbers DROP CONSTRAINT phone_numbers_access_token_encrypted_check;
ALTER TABLE phone_numbers ADD CONSTRAINT phone_numbers_access_token_encrypted_check
  CHECK (access_token_encrypted LIKE 'v1:%' OR access_token_encrypted LIKE 'v2:%');
