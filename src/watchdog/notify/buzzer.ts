/**
 * Alert by the terminal bell: BEL (0x07) bytes written to a tty or console device (a PC
 * speaker or a buzzer wired to a serial console beeps on it). Opened non-blocking and without
 * becoming our controlling terminal.
 */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';

export interface BuzzerChannel {
  device: string;
  beeps: number;
}

const bel = 0x07;

export async function sendBuzzer(channel: BuzzerChannel): Promise<void> {
  const handle = await open(channel.device, fsConstants.O_WRONLY | fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK | fsConstants.O_APPEND);
  try {
    await handle.write(Buffer.alloc(channel.beeps, bel));
  } finally {
    await handle.close();
  }
}
