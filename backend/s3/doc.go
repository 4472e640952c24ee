// Package s3 stores a repository in an S3 bucket (Amazon S3, MinIO, or any
// engine that speaks the S3 API), through minio-go.
//
// A location is s3:https://HOST[:PORT]/BUCKET[/PREFIX] (s3:http://... for
// a server on a trusted network). Objects are named as a local
// repository's files are, below PREFIX: config, keys/NAME, data/NN/NAME,
// index/NAME, log/NAME, locks/NAME.
//
// Credentials and the region are read as the AWS tools read them (see
// awsCredentials and awsRegion), never from the location. Options are set
// with Config.SetOption (-o s3.KEY=VALUE): the region, the bucket lookup
// style, a CA file, and the storage class of data packs.
//
// What S3 gives and the backend contract needs:
//   - atomic visibility: an object appears whole when its PUT or its
//     multipart upload completes; a failed multipart upload is aborted,
//     and one cut short by a crash is removed by AbortUploads (prune);
//   - read-after-write: S3 and MinIO are strongly consistent;
//   - a delete of a missing object succeeds in S3, so Delete looks first;
//   - retention (object lock) refuses deletes: backend.ErrRetained, which
//     matches backend.ErrAppendOnly, so that prune and mirror keep the
//     object, name it, and go on.
//
// minio-go retries nothing itself here (MaxRetries 1): the retry wrapper
// the CLI stacks on every remote backend does it, with backoff, for 5xx,
// throttling (503 SlowDown, 429) and connection errors; classify marks the
// rest permanent.
package s3
