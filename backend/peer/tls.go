package peer

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/cairn-backup/cairn/crypt"
)

// ErrPeerMismatch: the server presented a key whose peer ID is not the one
// the location pins.
var ErrPeerMismatch = errors.New("server's peer ID does not match the location")

// ErrNotAllowed: the server refused this device's identity.
var ErrNotAllowed = errors.New("server refused this device")

// certificate returns a self-signed X.509 certificate for id's ed25519
// key. Nothing in it but the key matters: peers ignore names, dates and
// the self-signature, and pin the key. It is deterministic (ed25519
// signatures are, and the serial number is taken from the peer ID), so it
// needs neither randomness nor a clock.
func certificate(id *crypt.Identity) (tls.Certificate, error) {
	priv := id.PrivateKey()
	pid := id.PeerID()
	serial := new(big.Int).SetBytes(pid[:16])
	serial.SetBit(serial, 127, 0) // positive, at most 16 bytes
	if serial.Sign() == 0 {
		serial.SetInt64(1)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cairn " + pid.Short()},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Public(), priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// peerFromCerts returns the peer ID of the single ed25519 certificate a
// peer presented.
func peerFromCerts(raw [][]byte) (crypt.PeerID, error) {
	if len(raw) != 1 {
		return crypt.PeerID{}, fmt.Errorf("peer presented %d certificates, want exactly one", len(raw))
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return crypt.PeerID{}, fmt.Errorf("peer certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return crypt.PeerID{}, fmt.Errorf("peer certificate holds a %s key, want ed25519", cert.PublicKeyAlgorithm)
	}
	return crypt.PeerIDFromKey(pub), nil
}

// newTLSConfig is the one TLS configuration of both sides: TLS 1.3 only,
// both sides present their identity certificate, and check decides whether
// the other side's peer ID is welcome. Certificate chains, names and dates
// are not verified (InsecureSkipVerify on the client, RequireAnyClientCert
// on the server): the TLS 1.3 CertificateVerify message proves the peer
// holds the private key of the certificate it sent, and pinning that key's
// peer ID is the whole of the authentication. Session tickets are off so
// every connection runs the full handshake and its verification.
func newTLSConfig(id *crypt.Identity, check func(crypt.PeerID) error) (*tls.Config, error) {
	cert, err := certificate(id)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		InsecureSkipVerify:     true, // replaced by VerifyPeerCertificate's pinning
		NextProtos:             []string{alpn},
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pid, err := peerFromCerts(raw)
			if err != nil {
				return err
			}
			return check(pid)
		},
	}, nil
}
