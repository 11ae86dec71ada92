// Starts Neo4j 5.26 embedded with only the Bolt connector, for the local stack (no Docker).
//
// Run with the single-file source launcher, no build step:
//   AUTOGLM_NEO4J_PASSWORD=... java -cp '.stack/lib/neo4j/*' stack/neo4j/Launcher.java \
//       --home DIR --logs DIR --host HOST --port PORT [--user NAME] [--database NAME] \
//       [--pagecache MB] [--tls-dir DIR]
//
// With --tls-dir, Bolt takes TLS connections only (the secure local stack): DIR is Neo4j's SSL
// policy folder, with private.key, public.crt, trusted/ (the CA) and revoked/.
//
// The password comes from the environment so that it never shows in the process list.
// Prints one line starting with READY_MARKER once Bolt answers with the configured credentials,
// then runs until SIGTERM/SIGINT, when a shutdown hook stops the databases cleanly.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.configuration.ssl.ClientAuth;
import org.neo4j.configuration.ssl.SslPolicyConfig;
import org.neo4j.configuration.ssl.SslPolicyScope;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;

public final class Launcher {
    static final String READY_MARKER = "autoglm-neo4j ready";
    static final String PASSWORD_ENV = "AUTOGLM_NEO4J_PASSWORD";

    public static void main(String[] argv) throws Exception {
        try {
            run(parseArgs(argv));
        } catch (Exception e) {
            // The stack manager shows the last lines of this output: end with the root cause.
            e.printStackTrace();
            Throwable cause = e;
            while (cause.getCause() != null) {
                cause = cause.getCause();
            }
            fail("failed to start: " + cause);
        }
    }

    static void run(Map<String, String> args) throws Exception {
        Path home = Path.of(require(args, "home")).toAbsolutePath();
        Path logs = Path.of(require(args, "logs")).toAbsolutePath();
        SocketAddress listen =
                new SocketAddress(require(args, "host"), Integer.parseInt(require(args, "port")));
        String user = args.getOrDefault("user", "neo4j");
        String database = args.getOrDefault("database", "neo4j");
        long pageCacheMb = Long.parseLong(args.getOrDefault("pagecache", "256"));
        String password = System.getenv(PASSWORD_ENV);
        if (password == null || password.isEmpty()) {
            fail("the environment variable " + PASSWORD_ENV + " must hold the Neo4j password");
        }
        Files.createDirectories(home);
        Files.createDirectories(logs);

        long began = System.nanoTime();
        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home)
                .setConfig(GraphDatabaseSettings.logs_directory, logs)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                // Community edition holds a single user database: make it the configured one.
                .setConfig(GraphDatabaseSettings.initial_default_database, database)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                // Keep transaction logs small: the local stack is for development and tests.
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "2 files")
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, listen)
                .setConfig(BoltConnector.advertised_address, listen)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                // The machine may have no route to the internet: no usage reports.
                .setConfig(GraphDatabaseInternalSettings.udc_network_enabled, false)
                // Bolt's event loops otherwise idle 5 s each on shutdown: `stack down` waits.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0);
        String tlsDir = args.get("tls-dir");
        if (tlsDir != null) {
            Path policyDir = Path.of(tlsDir).toAbsolutePath();
            SslPolicyConfig bolt = SslPolicyConfig.forScope(SslPolicyScope.BOLT);
            builder.setConfig(bolt.enabled, true)
                    .setConfig(bolt.base_directory, policyDir)
                    .setConfig(bolt.private_key, policyDir.resolve("private.key"))
                    .setConfig(bolt.public_certificate, policyDir.resolve("public.crt"))
                    .setConfig(bolt.trusted_dir, policyDir.resolve("trusted"))
                    .setConfig(bolt.revoked_dir, policyDir.resolve("revoked"))
                    .setConfig(bolt.client_auth, ClientAuth.NONE)
                    .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.REQUIRED);
        }
        DatabaseManagementService dbms = builder.build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("autoglm-neo4j stopping");
            dbms.shutdown();
            System.out.println("autoglm-neo4j stopped");
            stopped.countDown();
        }, "autoglm-neo4j-shutdown"));

        long built = System.nanoTime();
        setPassword(dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME), user, password);
        long ready = System.nanoTime();
        System.out.printf("%s %s://%s database=%s user=%s (databases started in %.1fs, "
                + "password set in %.1fs)%n", READY_MARKER, tlsDir != null ? "bolt+s" : "bolt",
                listen, database, user,
                (built - began) / 1e9, (ready - built) / 1e9);
        System.out.flush();
        stopped.await();
    }

    /** Creates the user when missing and sets its password, which then needs no change. */
    static void setPassword(GraphDatabaseService system, String user, String password) {
        Map<String, Object> params = Map.of("user", user, "pw", password);
        system.executeTransactionally(
                "CREATE USER $user IF NOT EXISTS SET PASSWORD $pw CHANGE NOT REQUIRED", params);
        try {
            system.executeTransactionally(
                    "ALTER USER $user SET PASSWORD $pw CHANGE NOT REQUIRED", params);
        } catch (RuntimeException e) {
            // Neo4j refuses to "change" a password to the same value: that is the state we want.
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                throw e;
            }
            // The password is right, but a first start still asks for a change: clear that flag.
            system.executeTransactionally("ALTER USER $user SET PASSWORD CHANGE NOT REQUIRED",
                    Map.of("user", user));
        }
    }

    static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                fail("unexpected argument '" + argv[i] + "'");
            }
            args.put(argv[i].substring(2), argv[++i]);
        }
        return args;
    }

    static String require(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            fail("missing --" + name);
        }
        return value;
    }

    static void fail(String message) {
        System.err.println("autoglm-neo4j: " + message);
        System.exit(2);
    }
}
