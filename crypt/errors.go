package crypt

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; every error this
// package returns for bad input wraps exactly one of them.
var (
	// ErrAuth means sealed data failed to authenticate: it was altered, it
	// was sealed with another key, or it belongs to another kind of file.
	ErrAuth = errors.New("authentication failed")

	// ErrFormat means bytes are malformed: too short, too long, a bad
	// version, a non-canonical encoding, trailing data, or parameters out of
	// the allowed range.
	ErrFormat = errors.New("malformed data")

	// ErrUnknownKey means a sealed file names a key ID that is not in the
	// key ring: a key that `cairn key rotate --revoke-old-passwords` added
	// after the key file that opened the ring was revoked, or a file from
	// another repository.
	ErrUnknownKey = errors.New("sealed with a key this key ring lacks (added by a key rotation after this key file was revoked, or from another repository)")

	// ErrWrongPassword means a key file did not open with the given
	// password. A key file whose sealed key ring was altered reports the
	// same error: the two cannot be told apart.
	ErrWrongPassword = errors.New("wrong password or damaged key file")

	// ErrKDFCost means well-formed KDF parameters ask for more memory or
	// work than cairn spends on one derivation (KDFParams.CheckCost). A key
	// file asking for that much is not tried: anyone who can write to a
	// repository could otherwise make every command slow or run it out of
	// memory.
	ErrKDFCost = errors.New("KDF parameters exceed the cost limit")

	// ErrBadSignature means a log entry is well formed but its signature
	// does not verify with the device key it names.
	ErrBadSignature = errors.New("bad signature")
)
