package io.durabledd.bench.pekko;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.Address;
import org.apache.pekko.cluster.Cluster;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.ddata.DistributedData;
import org.apache.pekko.cluster.ddata.GCounter;
import org.apache.pekko.cluster.ddata.GCounterKey;
import org.apache.pekko.cluster.ddata.Key;
import org.apache.pekko.cluster.ddata.ORSet;
import org.apache.pekko.cluster.ddata.ORSetKey;
import org.apache.pekko.cluster.ddata.ReplicatedData;
import org.apache.pekko.cluster.ddata.Replicator;
import org.apache.pekko.cluster.ddata.SelfUniqueAddress;
import org.apache.pekko.pattern.Patterns;

/**
 * The Apache Pekko Distributed Data side of dd-bench's "durable-dd vs Apache Pekko DD" area.
 *
 * <p>{@code java ... Harness WORKLOAD key=value ...} runs one workload and prints one line {@code
 * PEKKO-RESULT {json}} on stdout (Pekko's own warnings may precede it). Workloads: {@code write},
 * {@code restore-populate}, {@code restore-load}, {@code memory}, {@code cluster}, {@code partition}, {@code version} (only the versions). A failed
 * workload prints the cause on stderr and exits with status 1.
 */
public final class Harness {
  private static final Duration ASK = Duration.ofSeconds(60);

  private Harness() {}

  public static void main(String[] argv) throws Exception {
    if (argv.length < 1) {
      fail("usage: Harness WORKLOAD [key=value ...]");
    }
    Map<String, String> args = new LinkedHashMap<>();
    for (int i = 1; i < argv.length; i++) {
      int eq = argv[i].indexOf('=');
      if (eq <= 0) {
        fail("argument " + argv[i] + " is not key=value");
      }
      args.put(argv[i].substring(0, eq), argv[i].substring(eq + 1));
    }
    Map<String, Object> out;
    switch (argv[0]) {
      case "write":
        out = write(args);
        break;
      case "restore-populate":
        out = restorePopulate(args);
        break;
      case "restore-load":
        out = restoreLoad(args);
        break;
      case "memory":
        out = memory(args);
        break;
      case "cluster":
        out = cluster(args);
        break;
      case "partition":
        out = partition(args);
        break;
      case "version":
        out = new LinkedHashMap<>();
        break;
      default:
        fail("unknown workload " + argv[0]);
        return;
    }
    out.put("workload", argv[0]);
    out.put("pekko_version", ActorSystem.Version());
    out.put("java_version", System.getProperty("java.version"));
    System.out.println("PEKKO-RESULT " + json(out));
    System.out.flush();
    System.exit(0);
  }

  private static void fail(String message) {
    System.err.println("pekko harness: " + message);
    System.exit(1);
  }

  private static String arg(Map<String, String> args, String name) {
    String v = args.get(name);
    if (v == null) {
      fail("missing argument " + name + "=");
    }
    return v;
  }

  private static int intArg(Map<String, String> args, String name) {
    String v = arg(args, name);
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      fail("argument " + name + "=" + v + " is not an integer");
      return 0;
    }
  }

  /** Config of one node: cluster provider, Artery TCP, and the durable store settings. */
  private static Config config(
      String durableDir, String writeBehind, int bindPort, int canonicalPort, String extra) {
    StringBuilder c = new StringBuilder();
    c.append("pekko.actor.provider = cluster\n");
    c.append("pekko.loglevel = WARNING\n");
    c.append("pekko.log-dead-letters = off\n");
    c.append("pekko.remote.artery.transport = tcp\n");
    c.append("pekko.remote.artery.canonical.hostname = \"127.0.0.1\"\n");
    c.append("pekko.remote.artery.canonical.port = ").append(canonicalPort).append('\n');
    c.append("pekko.remote.artery.bind.hostname = \"127.0.0.1\"\n");
    c.append("pekko.remote.artery.bind.port = ").append(bindPort).append('\n');
    c.append("pekko.cluster.jmx.enabled = off\n");
    c.append("pekko.coordinated-shutdown.exit-jvm = off\n");
    c.append("pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off\n");
    if (durableDir != null) {
      c.append("pekko.cluster.distributed-data.durable.keys = [\"*\"]\n");
      c.append("pekko.cluster.distributed-data.durable.lmdb.dir = \"")
          .append(durableDir)
          .append("\"\n");
      c.append("pekko.cluster.distributed-data.durable.lmdb.map-size = 4 GiB\n");
      c.append("pekko.cluster.distributed-data.durable.lmdb.write-behind-interval = ")
          .append(writeBehind)
          .append('\n');
    }
    c.append(extra);
    return ConfigFactory.parseString(c.toString()).withFallback(ConfigFactory.load());
  }

  /** Starts a one-node cluster and waits (bounded) until the node is Up. */
  private static ActorSystem lone(String name, Config config) throws Exception {
    ActorSystem system = ActorSystem.create(name, config);
    Cluster cluster = Cluster.get(system);
    cluster.join(cluster.selfAddress());
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (cluster.selfMember().status() != MemberStatus.up()) {
      if (System.nanoTime() > deadline) {
        fail("node " + name + " did not come Up within 60 s");
      }
      Thread.sleep(10);
    }
    return system;
  }

  private static void terminate(ActorSystem system) throws Exception {
    system.terminate();
    system.getWhenTerminated().toCompletableFuture().get(120, TimeUnit.SECONDS);
  }

  private static <A extends ReplicatedData> Object update(
      ActorRef replicator, Replicator.Update<A> update) throws Exception {
    Object reply = Patterns.ask(replicator, update, ASK).toCompletableFuture().get();
    if (!(reply instanceof Replicator.UpdateSuccess)) {
      throw new IllegalStateException("update of " + update.key() + " answered " + reply);
    }
    return reply;
  }

  private static <A extends ReplicatedData> A get(ActorRef replicator, Key<A> key)
      throws Exception {
    Object reply =
        Patterns.ask(replicator, new Replicator.Get<>(key, Replicator.readLocal()), ASK)
            .toCompletableFuture()
            .get();
    if (reply instanceof Replicator.GetSuccess) {
      @SuppressWarnings("unchecked")
      Replicator.GetSuccess<A> ok = (Replicator.GetSuccess<A>) reply;
      return ok.dataValue();
    }
    if (reply instanceof Replicator.NotFound) {
      return null;
    }
    throw new IllegalStateException("get of " + key + " answered " + reply);
  }

  /** Work split over {@code threads} threads, each running its share of {@code 0..n} in order. */
  private interface Job {
    void run(int i) throws Exception;
  }

  private static void parallel(int threads, int n, Job job) throws Exception {
    AtomicReference<Throwable> error = new AtomicReference<>();
    List<Thread> ts = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      final int w = t;
      Thread th =
          new Thread(
              () -> {
                try {
                  for (int i = w; i < n; i += threads) {
                    if (error.get() != null) {
                      return;
                    }
                    job.run(i);
                  }
                } catch (Throwable e) {
                  error.compareAndSet(null, e);
                }
              });
      ts.add(th);
      th.start();
    }
    for (Thread th : ts) {
      th.join();
    }
    if (error.get() != null) {
      throw new IllegalStateException("a worker failed: " + error.get(), error.get());
    }
  }

  private static double median(List<Double> values) {
    List<Double> v = new ArrayList<>(values);
    Collections.sort(v);
    int n = v.size();
    if (n == 0) {
      return 0;
    }
    return n % 2 == 1 ? v.get(n / 2) : (v.get(n / 2 - 1) + v.get(n / 2)) / 2;
  }

  private static long heapUsedAfterGc() throws InterruptedException {
    for (int i = 0; i < 4; i++) {
      System.gc();
      Thread.sleep(100);
    }
    return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
  }

  /**
   * Durable update throughput: {@code rounds} measured rounds (after one uncounted round that
   * creates the keys) of {@code updates} GCounter increments of distinct keys, WriteLocal, by
   * {@code writers} threads each waiting for its UpdateSuccess. {@code mode=durable}: LMDB with
   * write-behind off (each update stored before UpdateSuccess); {@code mode=write-behind}: the
   * given {@code interval}.
   */
  private static Map<String, Object> write(Map<String, String> args) throws Exception {
    int writers = intArg(args, "writers");
    int updates = intArg(args, "updates");
    int rounds = intArg(args, "rounds");
    String mode = arg(args, "mode");
    String writeBehind;
    if (mode.equals("durable")) {
      writeBehind = "off";
    } else if (mode.equals("write-behind")) {
      writeBehind = arg(args, "interval");
    } else {
      fail("mode=" + mode + ": expected durable or write-behind");
      return null;
    }
    ActorSystem system = lone("write", config(arg(args, "dir"), writeBehind, 0, 0, ""));
    ActorRef replicator = DistributedData.get(system).replicator();
    SelfUniqueAddress node = DistributedData.get(system).selfUniqueAddress();
    List<Double> rates = new ArrayList<>();
    for (int round = 0; round <= rounds; round++) {
      long started = System.nanoTime();
      parallel(
          writers,
          updates,
          i ->
              update(
                  replicator,
                  new Replicator.Update<>(
                      GCounterKey.create(String.format("k%06d", i)),
                      GCounter.create(),
                      Replicator.writeLocal(),
                      c -> c.increment(node, 1))));
      double secs = (System.nanoTime() - started) / 1e9;
      if (round > 0) {
        rates.add(updates / Math.max(secs, 1e-9));
      }
    }
    terminate(system);
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("writers", writers);
    out.put("updates", updates);
    out.put("mode", mode);
    out.put("write_behind_interval", writeBehind);
    out.put("rates", rates);
    out.put("median_rate", median(rates));
    return out;
  }

  private static Key<ORSet<String>> setKey(int i) {
    return ORSetKey.create(String.format("k%07d", i));
  }

  /** Writes {@code keys} ORSet&lt;String&gt; keys of 8 elements to the LMDB store of {@code dir}. */
  private static Map<String, Object> restorePopulate(Map<String, String> args) throws Exception {
    int keys = intArg(args, "keys");
    ActorSystem system = lone("restore", config(arg(args, "dir"), "200 ms", 0, 0, ""));
    ActorRef replicator = DistributedData.get(system).replicator();
    SelfUniqueAddress node = DistributedData.get(system).selfUniqueAddress();
    long started = System.nanoTime();
    parallel(
        16,
        keys,
        i ->
            update(
                replicator,
                new Replicator.Update<>(
                    setKey(i),
                    ORSet.<String>create(),
                    Replicator.writeLocal(),
                    s -> {
                      ORSet<String> r = s;
                      for (int j = 0; j < 8; j++) {
                        r = r.add(node, String.format("element-%02d-of-a-set-restored-on-start", j));
                      }
                      return r;
                    })));
    // Terminating stops the durable store, which writes what write-behind still holds.
    terminate(system);
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("keys", keys);
    out.put("seconds", (System.nanoTime() - started) / 1e9);
    return out;
  }

  /**
   * Restore on start: a fresh actor system on the LMDB store of {@code dir}; the clock runs from
   * starting the replicator (which loads every durable key before it answers anything else) until
   * it answers a Get of the last key, which must hold its 8 elements.
   */
  private static Map<String, Object> restoreLoad(Map<String, String> args) throws Exception {
    int keys = intArg(args, "keys");
    long heapBefore = heapUsedAfterGc();
    ActorSystem system = lone("restore", config(arg(args, "dir"), "off", 0, 0, ""));
    long started = System.nanoTime();
    ActorRef replicator = DistributedData.get(system).replicator();
    ORSet<String> last = get(replicator, setKey(keys - 1));
    double seconds = (System.nanoTime() - started) / 1e9;
    if (last == null || last.size() != 8) {
      fail("after the load, key " + (keys - 1) + " holds " + last);
    }
    ORSet<String> first = get(replicator, setKey(0));
    if (first == null || first.size() != 8) {
      fail("after the load, key 0 holds " + first);
    }
    long heapAfter = heapUsedAfterGc();
    terminate(system);
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("keys", keys);
    out.put("seconds", seconds);
    out.put("heap_growth_bytes", heapAfter - heapBefore);
    return out;
  }

  /**
   * Memory per key: a one-node replicator without durable store updates {@code keys} GCounter
   * keys once each; the figure is the growth of the heap in use after full GCs, per key.
   */
  private static Map<String, Object> memory(Map<String, String> args) throws Exception {
    int keys = intArg(args, "keys");
    ActorSystem system = lone("memory", config(null, "off", 0, 0, ""));
    ActorRef replicator = DistributedData.get(system).replicator();
    SelfUniqueAddress node = DistributedData.get(system).selfUniqueAddress();
    long before = heapUsedAfterGc();
    long started = System.nanoTime();
    parallel(
        8,
        keys,
        i ->
            update(
                replicator,
                new Replicator.Update<>(
                    GCounterKey.create(String.format("key-%07d", i)),
                    GCounter.create(),
                    Replicator.writeLocal(),
                    c -> c.increment(node, 1))));
    double seconds = (System.nanoTime() - started) / 1e9;
    GCounter lastValue = get(replicator, GCounterKey.create(String.format("key-%07d", keys - 1)));
    if (lastValue == null || lastValue.getValue().longValue() != 1) {
      fail("key " + (keys - 1) + " holds " + lastValue);
    }
    long after = heapUsedAfterGc();
    terminate(system);
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("keys", keys);
    out.put("seconds", seconds);
    out.put("heap_growth_bytes", after - before);
    out.put("bytes_per_key", (after - before) / (double) keys);
    return out;
  }

  /** A TCP relay from a listening port to a target port that counts every byte it carries. */
  private static final class CountingProxy {
    final ServerSocket server;
    final AtomicLong bytes;
    final List<Socket> sockets = new CopyOnWriteArrayList<>();

    CountingProxy(int target, AtomicLong bytes) throws IOException {
      this.bytes = bytes;
      this.server = new ServerSocket();
      server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      Thread acceptor =
          new Thread(
              () -> {
                while (!server.isClosed()) {
                  try {
                    Socket in = server.accept();
                    Socket out = new Socket(InetAddress.getLoopbackAddress(), target);
                    in.setTcpNoDelay(true);
                    out.setTcpNoDelay(true);
                    sockets.add(in);
                    sockets.add(out);
                    pump(in, out);
                    pump(out, in);
                  } catch (IOException e) {
                    return;
                  }
                }
              });
      acceptor.setDaemon(true);
      acceptor.start();
    }

    int port() {
      return server.getLocalPort();
    }

    private void pump(Socket from, Socket to) {
      Thread t =
          new Thread(
              () -> {
                byte[] buf = new byte[64 * 1024];
                try (InputStream in = from.getInputStream();
                    OutputStream out = to.getOutputStream()) {
                  int n;
                  while ((n = in.read(buf)) > 0) {
                    bytes.addAndGet(n);
                    out.write(buf, 0, n);
                  }
                } catch (IOException e) {
                  // Connection closed: the relay ends with it.
                } finally {
                  try {
                    to.close();
                  } catch (IOException e) {
                    // Already closed.
                  }
                }
              });
      t.setDaemon(true);
      t.start();
    }

    void close() throws IOException {
      server.close();
      for (Socket s : sockets) {
        s.close();
      }
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket()) {
      s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      return s.getLocalPort();
    }
  }

  private static Key<ORSet<Long>> clusterKey(int k) {
    return ORSetKey.create(String.format("set%04d", k));
  }

  /**
   * Five nodes in this JVM on 127.0.0.1 (Artery TCP), each reached through a counting relay (its
   * canonical port; it binds another). {@code updates} updates, each adding one new Long to one of
   * {@code keys} ORSet keys (round-robin), issued concurrently on all nodes (WriteLocal); then the
   * time until every node reads every element (polled every 20 ms). Bytes = every byte the relays
   * carried from the first update until convergence, less the idle traffic (cluster heartbeats and
   * gossip) measured over the 3 s before the updates, scaled to the same time.
   */
  private static Map<String, Object> cluster(Map<String, String> args) throws Exception {
    int updates = intArg(args, "updates");
    int keys = intArg(args, "keys");
    int nodes = 5;
    String gossip = arg(args, "gossip_interval");
    AtomicLong bytes = new AtomicLong();
    List<CountingProxy> proxies = new ArrayList<>();
    List<ActorSystem> systems = new ArrayList<>();
    String extra =
        "pekko.cluster.distributed-data.gossip-interval = "
            + gossip
            + "\n"
            + "pekko.cluster.distributed-data.notify-subscribers-interval = 20 ms\n";
    Address seed = null;
    for (int n = 0; n < nodes; n++) {
      int bind = freePort();
      CountingProxy proxy = new CountingProxy(bind, bytes);
      proxies.add(proxy);
      ActorSystem system = ActorSystem.create("cluster", config(null, "off", bind, proxy.port(), extra));
      systems.add(system);
      if (seed == null) {
        seed = Cluster.get(system).selfAddress();
      }
      Cluster.get(system).join(seed);
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (true) {
      int up = 0;
      for (Member m : Cluster.get(systems.get(0)).state().getMembers()) {
        if (m.status() == MemberStatus.up()) {
          up++;
        }
      }
      boolean allSeeAll = true;
      for (ActorSystem s : systems) {
        if (Cluster.get(s).state().members().size() != nodes
            || Cluster.get(s).selfMember().status() != MemberStatus.up()) {
          allSeeAll = false;
        }
      }
      if (up == nodes && allSeeAll) {
        break;
      }
      if (System.nanoTime() > deadline) {
        fail("the 5-node cluster did not form within 120 s");
      }
      Thread.sleep(50);
    }
    List<ActorRef> replicators = new ArrayList<>();
    for (ActorSystem s : systems) {
      replicators.add(DistributedData.get(s).replicator());
    }
    // Let the replicators learn each other, then measure the idle traffic.
    Thread.sleep(2000);
    long idleStartBytes = bytes.get();
    long idleStart = System.nanoTime();
    Thread.sleep(3000);
    double idleRate = (bytes.get() - idleStartBytes) / ((System.nanoTime() - idleStart) / 1e9);
    int[] expected = new int[keys];
    for (int u = 0; u < updates; u++) {
      expected[u % keys]++;
    }
    int perNode = (updates + nodes - 1) / nodes;
    long before = bytes.get();
    long started = System.nanoTime();
    parallel(
        nodes,
        nodes,
        r -> {
          ActorSystem s = systems.get(r);
          SelfUniqueAddress me = DistributedData.get(s).selfUniqueAddress();
          for (int j = 0; j < perNode; j++) {
            final long u = (long) r * perNode + j;
            if (u >= updates) {
              break;
            }
            update(
                replicators.get(r),
                new Replicator.Update<>(
                    clusterKey((int) (u % keys)),
                    ORSet.<Long>create(),
                    Replicator.writeLocal(),
                    set -> set.add(me, u)));
          }
        });
    long updated = System.nanoTime();
    long limit = updated + TimeUnit.SECONDS.toNanos(180);
    outer:
    while (true) {
      boolean done = true;
      check:
      for (ActorRef rep : replicators) {
        for (int k = 0; k < keys; k++) {
          ORSet<Long> set = get(rep, clusterKey(k));
          if (set == null || set.size() != expected[k]) {
            done = false;
            break check;
          }
        }
      }
      if (done) {
        break outer;
      }
      if (System.nanoTime() > limit) {
        fail("5 nodes did not converge within 180 s");
      }
      Thread.sleep(20);
    }
    long converged = System.nanoTime();
    long carried = bytes.get() - before;
    double elapsed = (converged - started) / 1e9;
    for (ActorSystem s : systems) {
      s.terminate();
    }
    for (ActorSystem s : systems) {
      s.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }
    for (CountingProxy p : proxies) {
      p.close();
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("updates", updates);
    out.put("keys", keys);
    out.put("bytes", carried);
    out.put("idle_bytes_per_second", idleRate);
    out.put("bytes_per_update", Math.max(0, carried - idleRate * elapsed) / updates);
    out.put("bytes_per_update_with_idle", carried / (double) updates);
    out.put("update_seconds", (updated - started) / 1e9);
    out.put("converge_seconds", (converged - updated) / 1e9);
    return out;
  }

  /** Blackholes (or lets through again) all traffic between {@code system} and {@code peer}. */
  private static void blackhole(ActorSystem system, Address peer, boolean on) throws Exception {
    String t = "org.apache.pekko.remote.transport.ThrottlerTransportAdapter$";
    Object mode = module(t + (on ? "Blackhole$" : "Unthrottled$"));
    Object both = module(t + "Direction$Both$");
    Object command =
        new org.apache.pekko.remote.transport.ThrottlerTransportAdapter.SetThrottle(
            peer,
            (org.apache.pekko.remote.transport.ThrottlerTransportAdapter.Direction) both,
            (org.apache.pekko.remote.transport.ThrottlerTransportAdapter.ThrottleMode) mode);
    scala.concurrent.Future<Object> done =
        ((org.apache.pekko.remote.RARP) org.apache.pekko.remote.RARP.apply(system)).provider().transport().managementCommand(command);
    scala.concurrent.Await.result(done, scala.concurrent.duration.Duration.create(30, "s"));
  }

  /** The instance of a Scala {@code object} (Java cannot name some nested ones). */
  private static Object module(String className) throws Exception {
    return Class.forName(className).getField("MODULE$").get(null);
  }

  private static boolean allHold(ActorRef replicator, int keys, long value, int step)
      throws Exception {
    for (int i = 0; i < keys; i += step) {
      GCounter c = get(replicator, GCounterKey.create(String.format("key-%07d", i)));
      if (c == null || c.getValue().longValue() != value) {
        return false;
      }
    }
    return true;
  }

  /**
   * Repair after a partition: 3 nodes in this JVM (Artery TCP on 127.0.0.1, test mode for its
   * blackhole), default replicator settings but {@code gossip_interval}; {@code keys} GCounter
   * keys written on a, until c holds them all; then c is cut from a and b (Artery's test-mode
   * blackhole, both ways) for {@code partition_ms} while {@code changed} of the keys are
   * incremented on a; then the partition heals. The figure: time from the heal until c reads
   * every changed value (polled every 100 ms).
   */
  private static Map<String, Object> partition(Map<String, String> args) throws Exception {
    int keys = intArg(args, "keys");
    int changed = intArg(args, "changed");
    int partitionMs = intArg(args, "partition_ms");
    String gossip = arg(args, "gossip_interval");
    int limitSeconds = intArg(args, "limit_s");
    String extra =
        "pekko.remote.artery.advanced.test-mode = on\n"
            + "pekko.cluster.distributed-data.gossip-interval = "
            + gossip
            + "\n";
    List<ActorSystem> systems = new ArrayList<>();
    Address seed = null;
    for (int n = 0; n < 3; n++) {
      int port = freePort();
      ActorSystem system = ActorSystem.create("partition", config(null, "off", port, port, extra));
      systems.add(system);
      if (seed == null) {
        seed = Cluster.get(system).selfAddress();
      }
      Cluster.get(system).join(seed);
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (true) {
      boolean allUp = true;
      for (ActorSystem s : systems) {
        int up = 0;
        for (Member m : Cluster.get(s).state().getMembers()) {
          if (m.status() == MemberStatus.up()) {
            up++;
          }
        }
        allUp &= up == 3;
      }
      if (allUp) {
        break;
      }
      if (System.nanoTime() > deadline) {
        fail("the 3-node cluster did not form within 120 s");
      }
      Thread.sleep(50);
    }
    ActorRef a = DistributedData.get(systems.get(0)).replicator();
    ActorRef c = DistributedData.get(systems.get(2)).replicator();
    SelfUniqueAddress me = DistributedData.get(systems.get(0)).selfUniqueAddress();
    long writeStart = System.nanoTime();
    parallel(
        8,
        keys,
        i ->
            update(
                a,
                new Replicator.Update<>(
                    GCounterKey.create(String.format("key-%07d", i)),
                    GCounter.create(),
                    Replicator.writeLocal(),
                    x -> x.increment(me, 1))));
    long limit = System.nanoTime() + TimeUnit.SECONDS.toNanos(limitSeconds);
    while (!allHold(c, keys, 1, Math.max(1, keys / 200)) || !allHold(c, keys, 1, 1)) {
      if (System.nanoTime() > limit) {
        fail("c did not receive the " + keys + " keys within " + limitSeconds + " s");
      }
      Thread.sleep(100);
    }
    double initialSeconds = (System.nanoTime() - writeStart) / 1e9;
    Address addrA = Cluster.get(systems.get(0)).selfAddress();
    Address addrB = Cluster.get(systems.get(1)).selfAddress();
    Address addrC = Cluster.get(systems.get(2)).selfAddress();
    long cut = System.nanoTime();
    blackhole(systems.get(2), addrA, true);
    blackhole(systems.get(2), addrB, true);
    blackhole(systems.get(0), addrC, true);
    blackhole(systems.get(1), addrC, true);
    int step = Math.max(1, keys / changed);
    for (int j = 0; j < changed; j++) {
      update(
          a,
          new Replicator.Update<>(
              GCounterKey.create(String.format("key-%07d", j * step)),
              GCounter.create(),
              Replicator.writeLocal(),
              x -> x.increment(me, 1)));
    }
    long rest = partitionMs - (System.nanoTime() - cut) / 1_000_000;
    if (rest > 0) {
      Thread.sleep(rest);
    }
    int seenDuringPartition = 0;
    for (int j = 0; j < changed; j++) {
      GCounter x = get(c, GCounterKey.create(String.format("key-%07d", j * step)));
      if (x != null && x.getValue().longValue() == 2) {
        seenDuringPartition++;
      }
    }
    blackhole(systems.get(2), addrA, false);
    blackhole(systems.get(2), addrB, false);
    blackhole(systems.get(0), addrC, false);
    blackhole(systems.get(1), addrC, false);
    long healed = System.nanoTime();
    limit = healed + TimeUnit.SECONDS.toNanos(limitSeconds);
    boolean repaired = false;
    while (System.nanoTime() < limit) {
      boolean all = true;
      for (int j = 0; j < changed && all; j++) {
        GCounter x = get(c, GCounterKey.create(String.format("key-%07d", j * step)));
        all = x != null && x.getValue().longValue() == 2;
      }
      if (all) {
        repaired = true;
        break;
      }
      Thread.sleep(100);
    }
    double repairSeconds = (System.nanoTime() - healed) / 1e9;
    for (ActorSystem s : systems) {
      s.terminate();
    }
    for (ActorSystem s : systems) {
      s.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("keys", keys);
    out.put("changed", changed);
    out.put("initial_seconds", initialSeconds);
    out.put("seen_during_partition", seenDuringPartition);
    out.put("repaired", repaired ? 1 : 0);
    out.put("repair_seconds", repairSeconds);
    return out;
  }

  /** Minimal JSON for the result line: numbers, strings and lists of numbers. */
  private static String json(Map<String, Object> map) {
    StringBuilder b = new StringBuilder("{");
    boolean first = true;
    for (Map.Entry<String, Object> e : map.entrySet()) {
      if (!first) {
        b.append(',');
      }
      first = false;
      b.append('"').append(e.getKey()).append("\":");
      value(b, e.getValue());
    }
    return b.append('}').toString();
  }

  private static void value(StringBuilder b, Object v) {
    if (v instanceof Number) {
      double d = ((Number) v).doubleValue();
      if (Double.isNaN(d) || Double.isInfinite(d)) {
        b.append("null");
      } else if (v instanceof Double || v instanceof Float) {
        b.append(String.format(Locale.ROOT, "%.6g", d));
      } else {
        b.append(v);
      }
    } else if (v instanceof List) {
      b.append('[');
      boolean first = true;
      for (Object o : (List<?>) v) {
        if (!first) {
          b.append(',');
        }
        first = false;
        value(b, o);
      }
      b.append(']');
    } else {
      b.append('"')
          .append(String.valueOf(v).replace("\\", "\\\\").replace("\"", "\\\""))
          .append('"');
    }
  }
}
