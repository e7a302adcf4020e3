// A MongoDB wire-protocol server for local runs and tests: mongo-java-server with its in-memory
// backend, which applies each single-document update atomically (FerretDB 1.x does not: see
// docs/mongo-wire-server.md). Usage: java MongoWireServer PORT [HOST]
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

public final class MongoWireServer {
  public static void main(String[] args) throws InterruptedException {
    int port = Integer.parseInt(args[0]);
    String host = args.length > 1 ? args[1] : "127.0.0.1";
    MongoServer server = new MongoServer(new MemoryBackend());
    server.bind(host, port);
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
    System.out.println("mongo wire server listening on " + host + ":" + port);
    Thread.currentThread().join();
  }
}
