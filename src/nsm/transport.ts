/**
 * The seam between the NSM client and the device: CBOR request bytes in,
 * CBOR response bytes out. The default is the native `/dev/nsm` helper; the
 * test kit's simulated NSM implements the same interface.
 */
export interface NsmTransport {
  request(message: Uint8Array): Promise<Uint8Array>;
  close?(): Promise<void> | void;
}

/** Request and response limits of the NSM driver (bytes). */
export const NSM_REQUEST_MAX = 0x1000;
/** Size of the response buffer handed to the NSM ioctl (12 KiB), as in AWS's own NSM driver library. */
export const NSM_RESPONSE_MAX = 0x3000;
