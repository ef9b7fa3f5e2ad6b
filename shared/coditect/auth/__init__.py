"""Identity primitives: password hashing and policy, the signing key ring, access tokens."""
