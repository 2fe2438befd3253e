/**
 * The one door to an S3-compatible object store (AWS S3, MinIO, Ceph RGW,
 * R2, GCS's XML API). Credentials, region and endpoint come from the SDK's
 * standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE
 * and ~/.aws, AWS_REGION, AWS_ENDPOINT_URL); every SDK failure leaves here
 * as a BundlemirrorError naming the bucket, the key and what to fix.
 */
import { createReadStream } from 'node:fs';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { BundlemirrorError } from '../errors.js';
import type { StoreTarget } from './s3-target.js';

export interface ObjectKind {
  contentType: string;
  cacheControl: string;
}

export interface StoredPart {
  partNumber: number;
  etag: string;
  size: number;
}

export interface StoreOptions {
  /** Path-style URLs (`endpoint/bucket/key`), which MinIO, Ceph and most self-hosted stores need. */
  pathStyle?: boolean;
}

export class S3Store {
  private readonly client: S3Client;

  constructor(
    readonly target: StoreTarget,
    opts: StoreOptions = {},
  ) {
    // the SDK's notice about its future Node versions would otherwise reach every publish's stderr
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      forcePathStyle: !!opts.pathStyle,
      // checksums only where S3 requires them: several S3-compatible stores refuse the newer trailing checksums
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 15_000, requestTimeout: 120_000 },
    });
  }

  close(): void {
    this.client.destroy();
  }

  /** Fails early, with the right code, when the bucket is missing or the endpoint unreachable. */
  async checkBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.target.bucket }));
    } catch (err) {
      const e = this.error(err, '', 'look up the bucket');
      // a key allowed to write objects but not to list the bucket: let the first upload decide
      if (e.code === 'E_STORE_AUTH' && status(err) === 403) return;
      throw e;
    }
  }

  /** Size of an object, or null when there is none under `key`. */
  async head(key: string): Promise<number | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.target.bucket, Key: key }));
      return r.ContentLength ?? null;
    } catch (err) {
      if (status(err) === 404 && nameOf(err) !== 'NoSuchBucket') return null;
      throw this.error(err, key, 'look up');
    }
  }

  async put(key: string, body: Buffer | { file: string; size: number }, kind: ObjectKind): Promise<void> {
    const content = Buffer.isBuffer(body) ? body : createReadStream(body.file);
    const size = Buffer.isBuffer(body) ? body.length : body.size;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.target.bucket,
          Key: key,
          Body: content,
          ContentLength: size,
          ContentType: kind.contentType,
          CacheControl: kind.cacheControl,
        }),
      );
    } catch (err) {
      throw this.error(err, key, 'upload');
    } finally {
      if (!Buffer.isBuffer(content)) content.destroy();
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.target.bucket, Key: key }));
    } catch (err) {
      throw this.error(err, key, 'delete');
    }
  }

  async startUpload(key: string, kind: ObjectKind): Promise<string> {
    try {
      const r = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.target.bucket,
          Key: key,
          ContentType: kind.contentType,
          CacheControl: kind.cacheControl,
        }),
      );
      if (!r.UploadId) throw new Error('the store answered without an upload id');
      return r.UploadId;
    } catch (err) {
      throw this.error(err, key, 'start a multipart upload of');
    }
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    try {
      const r = await this.client.send(
        new UploadPartCommand({
          Bucket: this.target.bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
        }),
      );
      if (!r.ETag) throw new Error('the store answered without the part ETag');
      return r.ETag;
    } catch (err) {
      throw this.error(err, key, `upload part ${partNumber} of`);
    }
  }

  /**
   * Parts the store holds for an unfinished upload; null when the store
   * cannot list them (s3rver) and 'gone' when the upload no longer exists
   * (completed, aborted, or expired by a lifecycle rule).
   */
  async listParts(key: string, uploadId: string): Promise<StoredPart[] | null | 'gone'> {
    const parts: StoredPart[] = [];
    let marker: string | undefined;
    try {
      for (;;) {
        const r = await this.client.send(
          new ListPartsCommand({ Bucket: this.target.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
        );
        for (const p of r.Parts ?? [])
          if (p.PartNumber && p.ETag) parts.push({ partNumber: p.PartNumber, etag: p.ETag, size: p.Size ?? -1 });
        if (!r.IsTruncated || !r.NextPartNumberMarker) return parts;
        marker = r.NextPartNumberMarker;
      }
    } catch (err) {
      if (nameOf(err) === 'NoSuchUpload') return 'gone';
      if (status(err) === 405 || status(err) === 501 || nameOf(err) === 'NotImplemented') return null;
      throw this.error(err, key, 'list the uploaded parts of');
    }
  }

  async completeUpload(key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<void> {
    try {
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.target.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
        }),
      );
    } catch (err) {
      throw this.error(err, key, 'complete the multipart upload of');
    }
  }

  /** Translates an SDK failure into one of our codes, naming bucket, key and the fix. */
  error(err: unknown, key: string, what: string): BundlemirrorError {
    if (err instanceof BundlemirrorError) return err;
    const where = `s3://${this.target.bucket}/${key}`;
    const name = nameOf(err);
    const code = status(err);
    const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || 'the AWS default endpoint';
    const msg = (err as Error)?.message ?? String(err);
    const cause = { cause: err };
    if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(msg))
      return new BundlemirrorError('E_STORE_AUTH', `no credentials to ${what} ${where}`, {
        ...cause,
        hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in ~/.aws/credentials',
      });
    if (/Region is missing/i.test(msg))
      return new BundlemirrorError('E_CONFIG', `no region to ${what} ${where}`, {
        ...cause,
        hint: 'set AWS_REGION (for MinIO, Ceph or s3rver any name works, e.g. us-east-1) or region in the AWS profile',
      });
    if (name === 'NoSuchBucket' || (key === '' && code === 404))
      return new BundlemirrorError('E_STORE_BUCKET', `no bucket ${this.target.bucket} at ${endpoint}`, {
        ...cause,
        hint: 'create the bucket, or fix its name; for a store other than AWS set AWS_ENDPOINT_URL, and --s3-path-style if it has no virtual-host names',
      });
    if (
      code === 403 ||
      ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken'].includes(name)
    )
      return new BundlemirrorError('E_STORE_AUTH', `the store refused to ${what} ${where} (${name || code})`, {
        ...cause,
        hint: `check the access key (AWS_ACCESS_KEY_ID, AWS_PROFILE) and that its policy allows s3:PutObject, s3:GetObject and s3:DeleteObject on arn:aws:s3:::${this.target.bucket}/${this.target.prefix ? this.target.prefix + '/' : ''}*`,
      });
    const net = (err as NodeJS.ErrnoException)?.code;
    if (
      net === 'ECONNREFUSED' ||
      net === 'ENOTFOUND' ||
      net === 'EAI_AGAIN' ||
      net === 'ECONNRESET' ||
      net === 'ETIMEDOUT' ||
      name === 'TimeoutError'
    )
      return new BundlemirrorError('E_STORE', `cannot reach ${endpoint} to ${what} ${where} (${net ?? name})`, {
        ...cause,
        hint: 'check AWS_ENDPOINT_URL and the network; run the same command again: what was uploaded stays uploaded',
      });
    return new BundlemirrorError('E_STORE', `failed to ${what} ${where}: ${name || code || ''} ${msg}`.trim(), {
      ...cause,
      hint: 'run the same command again: what was uploaded stays uploaded, the manifest goes last',
    });
  }
}

function nameOf(err: unknown): string {
  return typeof (err as Error)?.name === 'string' ? (err as Error).name : '';
}

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}
