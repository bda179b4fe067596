import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyAttestationDocument } from '../../src/attestation/index.js';
import { createNsmClient } from '../../src/nsm/client.js';
import { createSimulatedEnclave, createSimulatedNsm } from '../../src/testing/index.js';

function setup() {
  const enclave = createSimulatedEnclave();
  const device = createSimulatedNsm(enclave);
  return { enclave, device, nsm: createNsmClient(device) };
}

describe('NSM client against the simulated NSM (same transport seam as /dev/nsm)', () => {
  it('gets an attestation document that binds public key, user data and nonce', async () => {
    const { enclave, device, nsm } = setup();
    const publicKey = new Uint8Array([1, 2, 3]);
    const nonce = new Uint8Array(32).fill(7);
    const doc = await nsm.attestation({ publicKey, nonce, userData: new Uint8Array([9]) });
    const facts = await verifyAttestationDocument(doc, { trustAnchors: [enclave.trustAnchor], publicKey, nonce, userData: new Uint8Array([9]) });
    expect(facts.pcrsHex[0]).toBe(enclave.imageSha384);
    expect(device.requests.at(-1)).toEqual({ Attestation: { user_data: new Uint8Array([9]), nonce, public_key: publicKey } });
  });

  it('sends absent attestation fields as CBOR null, as the Rust API does', async () => {
    const { device, nsm } = setup();
    await nsm.attestation();
    expect(device.requests.at(-1)).toEqual({ Attestation: { user_data: null, nonce: null, public_key: null } });
  });

  it('describes, extends and locks PCRs with the device semantics', async () => {
    const { nsm } = setup();
    const before = await nsm.describePcr(16);
    expect(before).toEqual({ locked: false, data: new Uint8Array(48) });
    const data = new TextEncoder().encode('app config v1');
    const extended = await nsm.extendPcr(16, data);
    expect(Buffer.from(extended).toString('hex')).toBe(createHash('sha384').update(new Uint8Array(48)).update(data).digest('hex'));
    expect((await nsm.describePcr(16)).data).toEqual(extended);
    await nsm.lockPcr(16);
    expect((await nsm.describePcr(16)).locked).toBe(true);
    await expect(nsm.extendPcr(16, data)).rejects.toMatchObject({ code: 'ERR_NSM_READ_ONLY_INDEX', message: 'NSM ExtendPCR failed: ReadOnlyIndex' });
    await expect(nsm.extendPcr(0, data)).rejects.toMatchObject({ code: 'ERR_NSM_READ_ONLY_INDEX' });
    await expect(nsm.describePcr(32)).rejects.toMatchObject({ code: 'ERR_NSM_INVALID_INDEX' });
    await nsm.lockPcrs(20);
    expect((await nsm.describePcr(19)).locked).toBe(true);
    expect((await nsm.describePcr(20)).locked).toBe(false);
    await expect(nsm.lockPcrs(33)).rejects.toMatchObject({ code: 'ERR_NSM_INVALID_INDEX' });
  });

  it('describes the module and returns entropy', async () => {
    const { enclave, nsm } = setup();
    const d = await nsm.describeNsm();
    expect(d).toMatchObject({ versionMajor: 1, moduleId: enclave.moduleId, maxPcrs: 32, digest: 'SHA384' });
    expect(d.lockedPcrs).toEqual(Array.from({ length: 16 }, (_, i) => i));
    const a = await nsm.getRandom();
    const b = await nsm.getRandom();
    expect(a).toHaveLength(256);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  it('validates sizes before calling the device', async () => {
    const { device, nsm } = setup();
    const count = device.requests.length;
    await expect(nsm.attestation({ userData: new Uint8Array(1025) })).rejects.toMatchObject({ code: 'ERR_NSM_INPUT_TOO_LARGE', message: 'userData is 1025 bytes; the NSM accepts at most 1024' });
    await expect(nsm.extendPcr(16, new Uint8Array(5000))).rejects.toMatchObject({ code: 'ERR_NSM_INPUT_TOO_LARGE', message: expect.stringMatching(/NSM request is \d+ bytes; the limit is 4096/) });
    await expect(nsm.attestation({ nonce: 'x' as never })).rejects.toThrow(TypeError);
    await expect(nsm.describePcr(-1)).rejects.toThrow(TypeError);
    expect(device.requests.length).toBe(count);
  });

  it('decodes malformed or unexpected device answers into ERR_NSM_INVALID_RESPONSE', async () => {
    const { device, nsm } = setup();
    device.injectRawResponse(Uint8Array.of(0xff, 0x00));
    await expect(nsm.getRandom()).rejects.toMatchObject({ code: 'ERR_NSM_INVALID_RESPONSE', message: 'NSM answered GetRandom with bytes that are not CBOR' });
    device.injectRawResponse(Uint8Array.of(0x66, ...new TextEncoder().encode('LockPCR'.slice(0, 6))));
    await expect(nsm.lockPcr(17)).rejects.toMatchObject({ code: 'ERR_NSM_INVALID_RESPONSE' });
    device.injectRawResponse(Uint8Array.from(Buffer.from('a1654572726f72674e6f7456617269', 'hex'))); // {"Error": "NotVari"}
    await expect(nsm.getRandom()).rejects.toMatchObject({ code: 'ERR_NSM_INVALID_RESPONSE', message: 'NSM GetRandom failed: NotVari' });
  });

  it('maps every device error variant to its code', async () => {
    const { Encoder } = await import('cbor-x');
    const enc = new Encoder({ mapsAsObjects: true, useRecords: false });
    const variants = { InvalidArgument: 'ERR_NSM_INVALID_ARGUMENT', InvalidIndex: 'ERR_NSM_INVALID_INDEX', InvalidResponse: 'ERR_NSM_INVALID_RESPONSE', ReadOnlyIndex: 'ERR_NSM_READ_ONLY_INDEX', InvalidOperation: 'ERR_NSM_INVALID_OPERATION', BufferTooSmall: 'ERR_NSM_BUFFER_TOO_SMALL', InputTooLarge: 'ERR_NSM_INPUT_TOO_LARGE', InternalError: 'ERR_NSM_INTERNAL_ERROR' };
    const { device, nsm } = setup();
    for (const [variant, code] of Object.entries(variants)) {
      device.injectRawResponse(enc.encode({ Error: variant }));
      await expect(nsm.describeNsm()).rejects.toMatchObject({ code });
    }
  });
});
