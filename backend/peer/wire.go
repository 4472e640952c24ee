package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/backend"
)

// The wire format; docs/peer-protocol.md is its specification and
// testdata/messages pins it with vectors.

// ProtocolVersion is the one version of the protocol this package speaks.
const ProtocolVersion = 1

// alpn is the TLS application protocol both sides must negotiate.
const alpn = "cairn-peer/1"

// Limits of the wire format. Each frame's length is checked against the
// limit for the message the reader expects before anything is allocated.
const (
	// frameHeaderSize is the 4-byte big-endian payload length before
	// every message.
	frameHeaderSize = 4
	// maxHelloFrame bounds both hellos: the longest valid one is 3+255
	// bytes (client) or 26+maxMessage (server).
	maxHelloFrame = 2048
	// maxRequestFrame bounds a request header; a valid one is at most
	// 21 bytes plus its name, and names are at most 64 bytes.
	maxRequestFrame = 4096
	// maxResponseFrame bounds a response header: 12 bytes plus a message.
	maxResponseFrame = 4096
	// maxListFrame bounds one frame of a listing; the server fills frames
	// up to maxListEntries entries (about 19 KiB of 64-digit names).
	maxListFrame = 64 << 10
	// maxListEntries is the most entries the server puts in one frame.
	maxListEntries = 256
	// maxMessage bounds the human-readable text in a response or hello.
	maxMessage = 1024
	// MaxFileSize is the largest file the protocol moves in one put or
	// get: 4 GiB, far above the largest pack (128 MiB).
	MaxFileSize = 4 << 30
)

// Message types: the first byte of every frame's payload.
const (
	msgClientHello byte = 0x01
	msgServerHello byte = 0x02
	msgRequest     byte = 0x10
	msgCommit      byte = 0x11
	msgResponse    byte = 0x20
	msgList        byte = 0x21
)

// op is a request's operation.
type op uint8

const (
	opList   op = 1
	opStat   op = 2
	opGet    op = 3
	opPut    op = 4
	opDelete op = 5
)

func (o op) String() string {
	switch o {
	case opList:
		return "list"
	case opStat:
		return "stat"
	case opGet:
		return "get"
	case opPut:
		return "put"
	case opDelete:
		return "delete"
	case opReceipt:
		return "receipt"
	}
	return fmt.Sprintf("op %d", uint8(o))
}

// code is the status in a response or server hello.
type code uint8

const (
	codeOK            code = 0
	codeNotExist      code = 1  // backend.ErrNotExist
	codeInvalidName   code = 2  // backend.ErrInvalidName
	codeAppendOnly    code = 3  // backend.ErrAppendOnly
	codeQuota         code = 4  // backend.ErrQuota
	codeHashMismatch  code = 5  // backend.ErrHashMismatch
	codeBadRequest    code = 6  // a malformed or out-of-order message
	codeFrameTooLarge code = 7  // a frame longer than its limit
	codeBusy          code = 8  // too many connections; try later
	codeInternal      code = 9  // the server's storage failed
	codeVersion       code = 10 // no protocol version in common
	maxCode                = codeVersion
)

func (c code) String() string {
	switch c {
	case codeOK:
		return "ok"
	case codeNotExist:
		return "not exist"
	case codeInvalidName:
		return "invalid name"
	case codeAppendOnly:
		return "append-only"
	case codeQuota:
		return "quota"
	case codeHashMismatch:
		return "hash mismatch"
	case codeBadRequest:
		return "bad request"
	case codeFrameTooLarge:
		return "frame too large"
	case codeBusy:
		return "busy"
	case codeInternal:
		return "internal error"
	case codeVersion:
		return "unsupported version"
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// ErrProtocol means the other side sent bytes that break the protocol: a
// malformed or oversized message, or one out of turn. Every decoder in
// this package returns errors wrapping it.
var ErrProtocol = errors.New("peer protocol error")

// errFrameTooLarge wraps ErrProtocol; the server answers it with
// codeFrameTooLarge rather than codeBadRequest.
var errFrameTooLarge = fmt.Errorf("%w: frame too large", ErrProtocol)

func malformed(what, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrProtocol, what, fmt.Sprintf(format, args...))
}

// readFrame reads one frame whose payload may be at most limit bytes.
// A longer frame returns errFrameTooLarge without reading its payload, so
// the stream is out of step afterwards and must be closed.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, malformed("frame", "empty payload")
	}
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, limit)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return payload, nil
}

// appendFrame appends the length prefix for a payload of n bytes.
func frame(payload []byte) []byte {
	b := make([]byte, frameHeaderSize, frameHeaderSize+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// writeFrame writes payload as one frame in a single Write.
func writeFrame(w io.Writer, payload []byte) error {
	_, err := w.Write(frame(payload))
	return err
}

// decoder reads big-endian fields from a payload; the first failure sticks.
type decoder struct {
	what string
	b    []byte
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = malformed(d.what, format, args...)
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// int63 reads a u64 that must fit an int64.
func (d *decoder) int63(field string) int64 {
	v := d.u64()
	if v > math.MaxInt64 {
		d.fail("%s %d out of range", field, v)
		return 0
	}
	return int64(v)
}

// text reads a u16-length-prefixed message of printable UTF-8.
func (d *decoder) text() string {
	n := int(d.u16())
	if d.err == nil && n > maxMessage {
		d.fail("message of %d bytes, limit %d", n, maxMessage)
		return ""
	}
	s := string(d.take(n))
	if d.err == nil && !printable(s) {
		d.fail("message is not printable UTF-8")
	}
	return s
}

// expect checks the message type byte.
func (d *decoder) expect(typ byte) {
	if t := d.u8(); d.err == nil && t != typ {
		d.fail("message type 0x%02x, want 0x%02x", t, typ)
	}
}

// end checks that nothing is left.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// decode reads a message of type typ from payload p into a T: after the
// type byte, read takes the fields from d and checks them (a failure
// sticks in d, so read may go on reading zeros). Any failure, bytes left
// over included, returns the zero T and one error wrapping ErrProtocol
// that names the message as what.
func decode[T any](what string, typ byte, p []byte, read func(d *decoder, v *T)) (T, error) {
	d := &decoder{what: what, b: p}
	var v T
	d.expect(typ)
	read(d, &v)
	if err := d.end(); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// printable reports whether s is valid UTF-8 without control characters,
// so a peer's message cannot drive the user's terminal.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// sanitize makes a message the server composes safe to send: printable
// and at most maxMessage bytes.
func sanitize(s string) string {
	out := make([]byte, 0, min(len(s), maxMessage))
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = '?'
		}
		if len(out)+utf8.RuneLen(r) > maxMessage {
			break
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// clientHello opens a connection, right after the TLS handshake.
type clientHello struct {
	MinVersion, MaxVersion uint16
	// Repo is the repository NAME of the location.
	Repo string
}

func (h clientHello) encode() []byte {
	if len(h.Repo) > math.MaxUint8 {
		panic("peer: internal error: repository name longer than 255 bytes") // callers validate names
	}
	b := []byte{msgClientHello}
	b = binary.BigEndian.AppendUint16(b, h.MinVersion)
	b = binary.BigEndian.AppendUint16(b, h.MaxVersion)
	b = append(b, byte(len(h.Repo)))
	return append(b, h.Repo...)
}

func decodeClientHello(p []byte) (clientHello, error) {
	return decode("client hello", msgClientHello, p, func(d *decoder, h *clientHello) {
		h.MinVersion = d.u16()
		h.MaxVersion = d.u16()
		h.Repo = string(d.take(int(d.u8())))
		if d.err == nil && (h.MinVersion == 0 || h.MinVersion > h.MaxVersion) {
			d.fail("version range %d..%d", h.MinVersion, h.MaxVersion)
		}
	})
}

// serverHello answers a clientHello.
type serverHello struct {
	Status code
	// Version is the version chosen; when Status is codeVersion, the
	// highest version the server speaks.
	Version uint16
	// Mode, MaxStreams, Quota and Used are zero unless Status is codeOK.
	Mode Mode
	// MaxStreams is how many streams the server serves at once on this
	// connection.
	MaxStreams uint16
	// Quota is the client's quota in bytes, 0 for none; Used is how many
	// bytes the client's files take, all its repositories together.
	Quota, Used int64
	Message     string
}

func (h serverHello) encode() []byte {
	b := []byte{msgServerHello, byte(h.Status)}
	b = binary.BigEndian.AppendUint16(b, h.Version)
	b = append(b, byte(h.Mode))
	b = binary.BigEndian.AppendUint16(b, h.MaxStreams)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Quota))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Used))
	return appendText(b, h.Message)
}

func decodeServerHello(p []byte) (serverHello, error) {
	return decode("server hello", msgServerHello, p, func(d *decoder, h *serverHello) {
		h.Status = code(d.u8())
		h.Version = d.u16()
		h.Mode = Mode(d.u8())
		h.MaxStreams = d.u16()
		h.Quota = d.int63("quota")
		h.Used = d.int63("used")
		h.Message = d.text()
		if d.err == nil {
			switch {
			case h.Status > maxCode:
				d.fail("unknown status %d", h.Status)
			case h.Version == 0:
				d.fail("version 0")
			case h.Status == codeOK && !h.Mode.valid():
				d.fail("unknown mode %d", h.Mode)
			case h.Status == codeOK && h.MaxStreams == 0:
				d.fail("no streams allowed")
			case h.Status != codeOK && (h.Mode != 0 || h.MaxStreams != 0 || h.Quota != 0 || h.Used != 0):
				d.fail("refusal with session fields set")
			}
		}
	})
}

// request is the first message of every stream, from the client.
type request struct {
	Op   op
	Type backend.FileType
	// Offset is where a get starts; zero for other ops.
	Offset int64
	// Length is a get's range length (0: to the end) or a put's content
	// length; zero for other ops.
	Length int64
	// Name is empty for list.
	Name string
}

func (r request) encode() []byte {
	b := []byte{msgRequest, byte(r.Op), byte(r.Type)}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Offset))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Length))
	return appendText(b, r.Name)
}

// decodeRequest checks the request's structure. The file type and name
// are not checked here: the server answers bad ones with
// codeInvalidName, as the backend contract asks.
func decodeRequest(p []byte) (request, error) {
	return decode("request", msgRequest, p, func(d *decoder, r *request) {
		r.Op = op(d.u8())
		r.Type = backend.FileType(d.u8())
		r.Offset = d.int63("offset")
		r.Length = d.int63("length")
		n := int(d.u16())
		r.Name = string(d.take(n))
		if d.err == nil {
			switch r.Op {
			case opList:
				if r.Offset != 0 || r.Length != 0 || r.Name != "" {
					d.fail("list with offset, length or name")
				}
			case opStat, opDelete:
				if r.Offset != 0 || r.Length != 0 {
					d.fail("%s with offset or length", r.Op)
				}
			case opGet:
				if r.Length > MaxFileSize {
					d.fail("range length %d over the limit %d", r.Length, int64(MaxFileSize))
				}
			case opPut:
				if r.Offset != 0 {
					d.fail("put with offset")
				}
				if r.Length > MaxFileSize {
					d.fail("content length %d over the limit %d", r.Length, int64(MaxFileSize))
				}
			case opReceipt:
				checkReceiptRequest(d, r)
			case opScrubReport, opVerify, opAudit:
				checkScrubRequest(d, r)
			default:
				d.fail("unknown op %d", r.Op)
			}
		}
	})
}

// commit follows a put's content: the client's SHA-256 of what it sent.
// The server makes the file visible only after it.
type commit struct {
	Sum [32]byte
}

func (c commit) encode() []byte {
	return append([]byte{msgCommit}, c.Sum[:]...)
}

func decodeCommit(p []byte) (commit, error) {
	return decode("commit", msgCommit, p, func(d *decoder, c *commit) {
		copy(c.Sum[:], d.take(len(c.Sum)))
	})
}

// response is the server's answer on a stream.
type response struct {
	Status code
	// Size is a stat's file size or the number of body bytes that follow
	// a get's response; zero otherwise.
	Size    int64
	Message string
}

func (r response) encode() []byte {
	b := []byte{msgResponse, byte(r.Status)}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	return appendText(b, r.Message)
}

func decodeResponse(p []byte) (response, error) {
	return decode("response", msgResponse, p, func(d *decoder, r *response) {
		r.Status = code(d.u8())
		r.Size = d.int63("size")
		r.Message = d.text()
		if d.err == nil {
			switch {
			case r.Status > maxCode:
				d.fail("unknown status %d", r.Status)
			case r.Status != codeOK && r.Size != 0:
				d.fail("error with a size")
			}
		}
	})
}

// listFrame carries some entries of a listing.
type listFrame struct {
	Entries []backend.FileInfo
}

func (l listFrame) encode() []byte {
	if len(l.Entries) == 0 || len(l.Entries) > math.MaxUint16 {
		panic("peer: internal error: list frame must hold 1..65535 entries")
	}
	b := []byte{msgList}
	b = binary.BigEndian.AppendUint16(b, uint16(len(l.Entries)))
	for _, e := range l.Entries {
		if len(e.Name) == 0 || len(e.Name) > math.MaxUint8 {
			panic("peer: internal error: listed name must be 1..255 bytes")
		}
		b = append(b, byte(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Size))
	}
	return b
}

func decodeListFrame(p []byte) (listFrame, error) {
	return decode("list frame", msgList, p, func(d *decoder, l *listFrame) {
		n := int(d.u16())
		if d.err == nil && n == 0 {
			d.fail("no entries")
		}
		// Each entry takes at least 10 bytes: cap the allocation by what the
		// payload can hold, not by what it claims.
		l.Entries = make([]backend.FileInfo, 0, min(n, len(d.b)/10))
		for i := 0; i < n && d.err == nil; i++ {
			nl := int(d.u8())
			if d.err == nil && nl == 0 {
				d.fail("entry %d has an empty name", i)
			}
			name := string(d.take(nl))
			size := d.int63("size")
			l.Entries = append(l.Entries, backend.FileInfo{Name: name, Size: size})
		}
	})
}

// messageType returns the type byte of a payload (readFrame never returns
// an empty one).
func messageType(p []byte) byte { return p[0] }
