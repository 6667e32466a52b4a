// Type-checked by `tsc --noEmit` against the types codegen made from schema.graphql: LinkTarget is
// @oneOf, so exactly one of its keys compiles.
import type { LinkTarget, MutationLinkAlertsArgs } from './__generated__/schema-types.ts';

export const toExisting: LinkTarget = { existingIncidentId: 'inc_1042' };
export const toNew: LinkTarget = { createNew: true };

// @ts-expect-error both keys: a oneOf input takes exactly one
export const both: LinkTarget = { existingIncidentId: 'inc_1042', createNew: true };

// @ts-expect-error no key at all
export const neither: LinkTarget = {};

export const move: MutationLinkAlertsArgs = {
  alertIds: ['alert_57'],
  target: { existingIncidentId: 'inc_1042' },
  comment: 'Same attacker',
  idempotencyKey: 'move-57-to-1042',
};

export const invalidMove: MutationLinkAlertsArgs = {
  alertIds: ['alert_57'],
  // @ts-expect-error both keys inside the mutation's arguments too
  target: { existingIncidentId: 'inc_1042', createNew: true },
  comment: 'Same attacker',
};
