// issue 20 §1 / STYLE 13: docs/tls.md "Wire format" is the spec; its constants, the OID's DER, the
// UUID it comes from and the binding lengths must be what the code does.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { oid } from '../../src/tls/der.js';
import * as tls from '../../src/tls/index.js';

const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'tls.md'), 'utf8');
const section = doc.slice(doc.indexOf('\n## Wire format\n'));

describe('docs/tls.md "Wire format" matches the code', () => {
  it('has the section, and its table lists every wire constant with the exported value', () => {
    expect(doc.indexOf('\n## Wire format\n')).toBeGreaterThan(0);
    const rows = Object.fromEntries([...section.matchAll(/^\| `([A-Z_]+)` \| `([^`]+)` \|$/gm)].map((m) => [m[1]!, m[2]!]));
    const exported = {
      ATTESTATION_EXTENSION_OID: tls.ATTESTATION_EXTENSION_OID,
      CERTIFICATE_BINDING_LABEL: tls.CERTIFICATE_BINDING_LABEL,
      SESSION_BINDING_LABEL: tls.SESSION_BINDING_LABEL,
      SESSION_EXPORTER_LABEL: tls.SESSION_EXPORTER_LABEL,
      SESSION_EXPORTER_LENGTH: String(tls.SESSION_EXPORTER_LENGTH),
      SESSION_NONCE_LENGTH: String(tls.SESSION_NONCE_LENGTH),
      WELL_KNOWN_PATH: tls.WELL_KNOWN_PATH,
      DOCUMENT_MEDIA_TYPE: tls.DOCUMENT_MEDIA_TYPE,
    };
    expect(rows).toEqual(exported);
  });

  it('the OID is the UUID the doc names, under 2.25, and its DER is the hex the doc gives', () => {
    const uuid = /from UUID `([0-9a-f-]{36})`/.exec(section)![1]!;
    expect(`2.25.${BigInt(`0x${uuid.replace(/-/g, '')}`)}`).toBe(tls.ATTESTATION_EXTENSION_OID);
    const der = /Its DER encoding \(tag, length, content\) is\s+`([0-9a-f]+)`/.exec(section)![1]!;
    expect(Buffer.from(oid(tls.ATTESTATION_EXTENSION_OID)).toString('hex')).toBe(der);
  });

  it('the bindings are laid out and sized as the doc says', () => {
    const spki = new Uint8Array(91).fill(7);
    const nonce = new Uint8Array(32).fill(1);
    const ekm = new Uint8Array(32).fill(2);
    const cert = tls.certificateBinding(spki);
    const session = tls.sessionBinding(spki, nonce, ekm);
    const sizes = [...section.matchAll(/\((\d+) \+ (\d+) \+ (\d+)(?: \+ (\d+))? = (\d+) bytes\)/g)].map((m) => Number(m[5]));
    expect(sizes).toEqual([cert.length, session.length]);
    const h = createHash('sha384').update(spki).digest();
    expect(Buffer.from(cert)).toEqual(Buffer.concat([Buffer.from(tls.CERTIFICATE_BINDING_LABEL, 'ascii'), Buffer.of(0), h]));
    expect(Buffer.from(session)).toEqual(Buffer.concat([Buffer.from(tls.SESSION_BINDING_LABEL, 'ascii'), Buffer.of(0), h, nonce, ekm]));
    // The zero byte ends each label, and neither label is a prefix of the other.
    expect(tls.CERTIFICATE_BINDING_LABEL.startsWith(tls.SESSION_BINDING_LABEL) || tls.SESSION_BINDING_LABEL.startsWith(tls.CERTIFICATE_BINDING_LABEL)).toBe(false);
    expect(tls.SESSION_EXPORTER_LABEL.startsWith('EXPERIMENTAL')).toBe(true);
  });
});

describe('the spec alone is enough: a verifier written from docs/tls.md with pkijs/asn1js (not our DER code)', () => {
  it('finds the extension, reads the document, checks the binding to the SPKI', async () => {
    const asn1js = await import('asn1js');
    const pkijs = await import('pkijs');
    const { verifyAttestationDocument } = await import('../../src/attestation/index.node.js');
    const { attestedEnclave } = await import('./helpers.js');
    const { identity, trustAnchors, pcr0 } = await attestedEnclave('spec');

    const cert = pkijs.Certificate.fromBER(identity.certificate);
    // asn1js prints 2.25 arcs over 2^53 in its own notation: match the OID by the DER the doc gives.
    const oidDer = /Its DER encoding \(tag, length, content\) is\s+`([0-9a-f]+)`/.exec(section)![1]!;
    const parsed = asn1js.fromBER(identity.certificate).result as InstanceType<typeof asn1js.Sequence>;
    const tbs = parsed.valueBlock.value[0] as InstanceType<typeof asn1js.Sequence>;
    const wrapper = tbs.valueBlock.value.find((b) => b.idBlock.tagClass === 3 && b.idBlock.tagNumber === 3) as InstanceType<typeof asn1js.Constructed>;
    const exts = (wrapper.valueBlock.value[0] as InstanceType<typeof asn1js.Sequence>).valueBlock.value as Array<InstanceType<typeof asn1js.Sequence>>;
    const ids = exts.map((e) => Buffer.from(e.valueBlock.value[0]!.valueBeforeDecodeView).toString('hex'));
    expect(ids.filter((id) => id === oidDer)).toHaveLength(1);
    const matching = (cert.extensions ?? []).filter((_e, i) => ids[i] === oidDer);
    expect(matching).toHaveLength(1);
    expect(matching[0]!.critical).toBe(false);
    const inner = asn1js.fromBER(matching[0]!.extnValue.valueBlock.valueHexView);
    expect(inner.offset).toBe(matching[0]!.extnValue.valueBlock.valueHexView.length);
    expect(inner.result).toBeInstanceOf(asn1js.OctetString);
    const document = new Uint8Array((inner.result as InstanceType<typeof asn1js.OctetString>).valueBlock.valueHexView);
    const spki = new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER());
    const userData = Buffer.concat([Buffer.from('nitro-enclave-sdk/tls certificate v1', 'ascii'), Buffer.of(0), createHash('sha384').update(spki).digest()]);
    const facts = await verifyAttestationDocument(document, { trustAnchors, expectedPcrs: { 0: pcr0 }, userData: new Uint8Array(userData), maxAgeMs: 60_000 });
    expect(facts.pcrsHex[0]).toBe(pcr0);
    identity.close();
  });
});
