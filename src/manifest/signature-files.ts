/**
 * Where signatures live in a published tree: beside the file they sign,
 * with `.sig` appended (`manifest.js.gz.sig`, `<repo path>/index.json.sig`),
 * as `ssh-keygen -Y sign` names them. Bundles need none: the signed
 * index.json names each by sha256 and size; bundle-lists are derived.
 */
const SIGNATURE_SUFFIX = '.sig';

export function signatureOf(fileOrUrl: string): string {
  return fileOrUrl + SIGNATURE_SUFFIX;
}
