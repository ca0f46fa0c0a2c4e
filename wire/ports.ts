import { z } from 'zod';

export const PortList = z.object({ ports: z.array(z.number().int()) });
export type PortList = z.infer<typeof PortList>;

export const PortInUse = z.object({ isInUse: z.boolean() });
export type PortInUse = z.infer<typeof PortInUse>;
