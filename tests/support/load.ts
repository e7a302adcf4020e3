/**
 * Many concurrent clients, each a loop of requests over its own keep-alive connection (undici's
 * pool opens as many as there are requests in flight), until a stop condition. Bounded by a
 * request budget so a bug can never turn a test into an endless load.
 */
export async function hammer(clients: number, budget: number, step: (client: number) => Promise<'again' | 'stop'>): Promise<void> {
  let spent = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (spent < budget) {
        spent++;
        if ((await step(client)) === 'stop') return;
      }
    }),
  );
  if (spent >= budget) throw new Error(`request budget of ${budget} exhausted`);
}
