/*
 * Starts HiveMQ Community Edition, embedded, for the local stack and the tests.
 *
 *   java -cp '<libs>/*:<classes>' Launcher --port 1883 --bind 127.0.0.1 --conf DIR --data DIR --extensions DIR
 *
 * DIR/config.xml (see mqtt_kafka_sync/devstack/brokers/hivemq/config.xml) reads the port and address as ${HIVEMQ_PORT} and
 * ${HIVEMQ_BIND_ADDRESS}: HiveMQ resolves such placeholders from system properties first, then the
 * environment, so --port/--bind win over the variables of the same name. SIGTERM stops the broker
 * (sessions and queues are written to the data dir as they change, so SIGKILL loses nothing acknowledged
 * either); "HiveMQ embedded started" on stdout means the listener is open.
 */

import com.hivemq.embedded.EmbeddedHiveMQ;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public final class Launcher {

    private Launcher() {
    }

    public static void main(final String[] args) throws Exception {
        final Map<String, String> options = parse(args);
        final String port = options.getOrDefault("port", System.getenv().getOrDefault("HIVEMQ_PORT", "1883"));
        final String bind = options.getOrDefault("bind",
                System.getenv().getOrDefault("HIVEMQ_BIND_ADDRESS", "127.0.0.1"));
        System.setProperty("HIVEMQ_PORT", port);
        System.setProperty("HIVEMQ_BIND_ADDRESS", bind);
        final Path conf = Path.of(require(options, "conf"));
        final Path data = Path.of(require(options, "data"));
        final Path extensions = Path.of(options.getOrDefault("extensions", data.resolve("extensions").toString()));
        Files.createDirectories(data);
        Files.createDirectories(extensions);

        final EmbeddedHiveMQ hivemq = EmbeddedHiveMQ.builder()
                .withConfigurationFolder(conf)
                .withDataFolder(data)
                .withExtensionsFolder(extensions)
                .build();
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                hivemq.stop().get(20, TimeUnit.SECONDS);
            } catch (final Exception e) {
                System.err.println("HiveMQ embedded: stop failed: " + e);
            } finally {
                stopped.countDown();
            }
        }, "launcher-shutdown"));
        try {
            hivemq.start().join();
        } catch (final RuntimeException e) {
            System.err.println("HiveMQ embedded: start failed: " + e);
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
        System.out.println("HiveMQ embedded started on " + bind + ":" + port);
        System.out.flush();
        stopped.await();
    }

    private static Map<String, String> parse(final String[] args) {
        final Map<String, String> options = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("usage: Launcher --conf DIR --data DIR "
                        + "[--extensions DIR] [--port N] [--bind ADDRESS]; got " + String.join(" ", args));
            }
            options.put(args[i].substring(2), args[++i]);
        }
        return options;
    }

    private static String require(final Map<String, String> options, final String key) {
        final String value = options.get(key);
        if (value == null) {
            throw new IllegalArgumentException("missing --" + key);
        }
        return value;
    }
}
