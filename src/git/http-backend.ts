/**
 * `git http-backend` as a CGI program, for `serve`'s read-only smart HTTP.
 *
 * It starts through the same clean environment as every other git call
 * (exec.ts), and additionally drops any CGI variables this process may have
 * inherited: a stray REMOTE_USER in the server's own environment would
 * otherwise make http-backend treat every request as authenticated.
 * We run `git http-backend` rather than a fixed path to the binary so the
 * exec path of whichever git is installed is used.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { BundlemirrorError } from '../errors.js';
import { gitEnv } from './exec.js';

export interface HttpBackendRequest {
  /** Real (symlink-free) absolute path of the directory repositories are served from. */
  projectRoot: string;
  /** `/<repo path>/<service path>`, relative to projectRoot, already checked by the caller. */
  pathInfo: string;
  method: 'GET' | 'POST';
  queryString: string;
  contentType?: string | undefined;
  contentLength?: string | undefined;
  /** `gzip` when the client compressed the request body; http-backend inflates it. */
  contentEncoding?: string | undefined;
  remoteAddr?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** Variables with CGI meaning that must come from the request, never from our own environment. */
const CGI_VARIABLE =
  /^(HTTP_|CONTENT_|REMOTE_|REQUEST_|SERVER_|GATEWAY_|SCRIPT_|AUTH_TYPE$|PATH_INFO$|PATH_TRANSLATED$|QUERY_STRING$)/;

export function httpBackendEnv(req: HttpBackendRequest): NodeJS.ProcessEnv {
  const env = gitEnv();
  for (const key of Object.keys(env)) if (CGI_VARIABLE.test(key)) delete env[key];
  const cgi: Record<string, string | undefined> = {
    GIT_PROJECT_ROOT: req.projectRoot,
    // the caller has already decided the repository is served (it is in the served manifest), so no
    // git-daemon-export-ok files are needed
    GIT_HTTP_EXPORT_ALL: '1',
    // no GIT_PROTOCOL, ever: with protocol v2 upload-pack hands out unreachable objects by id
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_METHOD: req.method,
    PATH_INFO: req.pathInfo,
    QUERY_STRING: req.queryString,
    CONTENT_TYPE: req.contentType,
    CONTENT_LENGTH: req.contentLength,
    HTTP_CONTENT_ENCODING: req.contentEncoding,
    REMOTE_ADDR: req.remoteAddr,
  };
  for (const [key, value] of Object.entries(cgi)) {
    if (value === undefined) continue;
    // spawn refuses NUL in the environment; the caller should have refused the request already
    if (value.includes('\0')) throw new BundlemirrorError('E_UNSAFE_NAME', `CGI variable ${key} contains a NUL byte`);
    env[key] = value;
  }
  return env;
}

/**
 * Starts `git http-backend` for one request. The caller pipes the request
 * body into stdin and reads the CGI response (headers, blank line, body)
 * from stdout; aborting `signal` kills the process.
 */
export function spawnHttpBackend(req: HttpBackendRequest): ChildProcessWithoutNullStreams {
  // the settings a mirror's safety rests on win over whatever a system or repository config says
  const settings = ['uploadpack.allowAnySHA1InWant=false', 'http.receivepack=false', 'http.uploadarch=false'];
  return spawn('git', [...settings.flatMap((kv) => ['-c', kv]), 'http-backend'], {
    cwd: req.projectRoot,
    env: httpBackendEnv(req),
    stdio: ['pipe', 'pipe', 'pipe'],
    signal: req.signal,
  });
}
