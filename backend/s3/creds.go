package s3

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials are read as the AWS tools read them, first found wins:
//
//  1. AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY), AWS_SECRET_ACCESS_KEY (or
//     AWS_SECRET_KEY) and AWS_SESSION_TOKEN;
//  2. the profile AWS_PROFILE names ("default" when unset) in the shared
//     credentials file: AWS_SHARED_CREDENTIALS_FILE, else
//     ~/.aws/credentials.
//
// With neither, requests go unsigned (a public bucket). The keys are held
// by minio-go's credentials type and never printed.
func awsCredentials() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	})
}

// awsRegion is the region the AWS tools would use: AWS_DEFAULT_REGION,
// AWS_REGION, else the "region" of AWS_PROFILE's section (or the
// default's) in the config file (AWS_CONFIG_FILE, else ~/.aws/config).
// Empty when none is set.
func awsRegion() string {
	for _, k := range []string{"AWS_DEFAULT_REGION", "AWS_REGION"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	file := os.Getenv("AWS_CONFIG_FILE")
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		file = filepath.Join(home, ".aws", "config")
	}
	profile := os.Getenv("AWS_PROFILE")
	if profile == "" {
		profile = "default"
	}
	return configRegion(file, profile)
}

// maxConfigLine bounds a line of the AWS config file.
const maxConfigLine = 64 << 10

// configRegion reads the region of profile from an AWS config file: the
// section is "[default]" for the default profile and "[profile NAME]" for
// others (the AWS CLI's rule; "[NAME]" is taken too). A file that does not
// open or does not name a region gives "".
func configRegion(file, profile string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxConfigLine)
	in := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			name := strings.TrimSpace(line[1 : len(line)-1])
			if p, ok := strings.CutPrefix(name, "profile "); ok {
				name = strings.TrimSpace(p)
			}
			in = name == profile
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "region" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
