"""PKI and key stores: the issuing side of trust.

    ca.py          root certificate, purpose-bound signer certificates, the root's CRL
    store.py       the KeyStore interface, FileKeyStore, `open_key_store(settings)`
    pkcs8.py       passphrase-encrypted PKCS#8 (PBES2, scrypt, AES-256-CBC)
    pkcs11.py      Pkcs11KeyStore (HSMs; SoftHSM2 in tests)
    ceremony.py    init-root, issue, rotate, revoke, trust-list export, `active_signer`
    ephemeral.py   an in-memory store and PKI for tests and benchmarks

Terminals never import this package: what they need (`cardsys.pki`, `cardsys.formats.trustlist`)
lives in `cardsys`.
"""
