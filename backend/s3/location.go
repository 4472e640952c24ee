package s3

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrLocation is wrapped by every error ParseLocation returns.
var ErrLocation = errors.New("invalid s3 location")

// ErrOption is wrapped by the errors about backend options (-o s3.*): an
// unknown key or a value that does not parse.
var ErrOption = errors.New("invalid s3 option")

// Lookup says how requests name the bucket.
type Lookup string

// The bucket lookups of -o s3.bucket-lookup.
const (
	// LookupAuto: virtual-host style for Amazon's and a few other
	// clouds' endpoints, path style for any other (minio-go's rule).
	LookupAuto Lookup = "auto"
	// LookupPath: https://HOST/BUCKET/KEY (MinIO, most self-hosted
	// engines).
	LookupPath Lookup = "path"
	// LookupDNS: https://BUCKET.HOST/KEY (virtual-host style).
	LookupDNS Lookup = "dns"
)

// Config says where a repository lies and how to reach it. Endpoint and
// Bucket are required; credentials are not part of it (see Credentials).
type Config struct {
	// Endpoint is HOST or HOST:PORT of the S3 service.
	Endpoint string
	// Secure is true for https (the default), false for http.
	Secure bool
	// Bucket holds the repository.
	Bucket string
	// Prefix is the folder in the bucket that holds the repository,
	// without a leading or trailing slash; "" for the bucket's root.
	Prefix string

	// Region is the bucket's region (-o s3.region). Empty means
	// AWS_DEFAULT_REGION, AWS_REGION, the AWS config file's region for
	// the profile, and then asking the service.
	Region string
	// Lookup is the bucket naming style (-o s3.bucket-lookup); empty
	// means LookupAuto.
	Lookup Lookup
	// CAFile is a PEM file of certificate authorities to trust in place
	// of the system's (-o s3.ca-file), for a self-hosted engine with its
	// own CA.
	CAFile string
	// StorageClass is the storage class data packs are put in
	// (-o s3.storage-class); empty means the bucket's default. Index,
	// keys, config, log and locks always go in the standard class, since
	// every command reads them.
	StorageClass string
}

// Option is a backend option: a key of SetOption, and what it does.
type Option struct {
	Key   string // without the "s3." prefix
	Value string // what the value is, for help
	Help  string
}

// Options lists the keys SetOption takes.
var Options = []Option{
	{"region", "REGION", "the bucket's region (default: $AWS_DEFAULT_REGION, $AWS_REGION, the AWS config file's, else asked of the service)"},
	{"bucket-lookup", "auto|path|dns", "name the bucket in the path (https://HOST/BUCKET/...) or in the host name (https://BUCKET.HOST/...); auto: dns for Amazon's endpoints, path for others"},
	{"ca-file", "FILE", "trust the certificate authorities of this PEM file in place of the system's"},
	{"storage-class", "CLASS", "the storage class of data packs, such as STANDARD_IA or GLACIER_IR (index, keys, config and log stay in the standard class)"},
}

// SetOption sets the backend option key (without the "s3." prefix) to
// value. Unknown keys and bad values give an error wrapping ErrOption.
func (c *Config) SetOption(key, value string) error {
	if hasControl(value) {
		return fmt.Errorf("%w: s3.%s holds control characters", ErrOption, key)
	}
	switch key {
	case "region":
		c.Region = value
	case "bucket-lookup":
		switch l := Lookup(value); l {
		case LookupAuto, LookupPath, LookupDNS:
			c.Lookup = l
		default:
			return fmt.Errorf("%w: s3.bucket-lookup is %q (auto, path or dns)", ErrOption, value)
		}
	case "ca-file":
		if value == "" {
			return fmt.Errorf("%w: s3.ca-file is empty", ErrOption)
		}
		c.CAFile = value
	case "storage-class":
		if value == "" || strings.ContainsAny(value, " /") {
			return fmt.Errorf("%w: s3.storage-class %q is not a storage class name", ErrOption, value)
		}
		c.StorageClass = value
	default:
		keys := make([]string, 0, len(Options))
		for _, o := range Options {
			keys = append(keys, "s3."+o.Key)
		}
		return fmt.Errorf("%w: unknown option %q (known: %s)", ErrOption, "s3."+key, strings.Join(keys, ", "))
	}
	return nil
}

// ParseLocation parses "s3:https://HOST[:PORT]/BUCKET[/PREFIX]" (or
// s3:http://... for a server on a trusted network). The "s3:" may be left
// out. A location holding a user name or password is refused: credentials
// come from the environment or the AWS files, never from the location,
// which appears in messages and logs.
func ParseLocation(loc string) (Config, error) {
	var cfg Config
	rest := strings.TrimPrefix(loc, "s3:")
	if hasControl(rest) {
		return cfg, fmt.Errorf("%w: control characters in the location", ErrLocation)
	}
	u, err := url.Parse(rest)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return cfg, fmt.Errorf("%w: want s3:https://HOST[:PORT]/BUCKET[/PREFIX]", ErrLocation)
	}
	if u.User != nil {
		return cfg, fmt.Errorf("%w: credentials in the location are refused (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)", ErrLocation)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return cfg, fmt.Errorf("%w: a query or fragment in the location", ErrLocation)
	}
	if u.Host == "" || u.Hostname() == "" {
		return cfg, fmt.Errorf("%w: no host", ErrLocation)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return cfg, fmt.Errorf("%w: bad port %q", ErrLocation, p)
		}
	}
	cfg.Endpoint = u.Host
	cfg.Secure = u.Scheme == "https"
	p := strings.Trim(u.Path, "/")
	bucket, prefix, _ := strings.Cut(p, "/")
	if bucket == "" {
		return cfg, fmt.Errorf("%w: no bucket", ErrLocation)
	}
	if !validBucket(bucket) {
		return cfg, fmt.Errorf("%w: %q is not a bucket name (3 to 63 lowercase letters, digits, '.' and '-')", ErrLocation, bucket)
	}
	for _, part := range strings.Split(prefix, "/") {
		if prefix != "" && (part == "" || part == "." || part == "..") {
			return cfg, fmt.Errorf("%w: prefix %q is not a clean path", ErrLocation, prefix)
		}
	}
	cfg.Bucket, cfg.Prefix = bucket, prefix
	return cfg, nil
}

// String is the location in the form ParseLocation reads.
func (c Config) String() string {
	scheme := "https"
	if !c.Secure {
		scheme = "http"
	}
	s := "s3:" + scheme + "://" + c.Endpoint + "/" + c.Bucket
	if c.Prefix != "" {
		s += "/" + c.Prefix
	}
	return s
}

// validBucket checks the S3 bucket naming rules that matter for a URL:
// 3 to 63 characters of lowercase letters, digits, '.' and '-', starting
// and ending with a letter or digit.
func validBucket(s string) bool {
	if len(s) < 3 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '.' && c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
