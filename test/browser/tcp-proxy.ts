/**
 * A TCP proxy in front of the service whose open connections can be cut at will: a real network blip for
 * the browser (its streams break mid-flight), while new connections go through again at once.
 */
import net from "node:net";

/** A running proxy. */
export interface TcpProxy {
  readonly port: number;
  /** Destroys every open connection (both sides). */
  cut(): void;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 to `targetPort`. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    open.add(s);
    s.once("close", () => open.delete(s));
    s.on("error", () => s.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    track(client);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const cut = () => {
    for (const s of open) s.destroy();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    cut,
    close: () =>
      new Promise<void>((done) => {
        cut();
        server.close(() => done());
      }),
  };
}
