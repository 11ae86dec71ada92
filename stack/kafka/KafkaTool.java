// What the secure local stack asks of Kafka's own Java code (no build step: the single-file
// source launcher runs it, `java -cp '.stack/lib/kafka/*' stack/kafka/KafkaTool.java ...`).
//
//   format ARGS...        kafka-storage format ARGS, plus one --add-scram per SCRAM-SHA-512 user
//                         read from the environment (AUTOGLM_KAFKA_SCRAM_USERS: "name password"
//                         lines), so passwords never show in the process list.
//   acls CLIENT_PROPS ACL_FILE
//                         creates the ACLs of ACL_FILE ("User:name|TOPIC|PREFIXED|name|READ"
//                         lines, allow only) with an Admin client configured by CLIENT_PROPS
//                         (a super user's SASL_SSL settings). Creating an ACL that exists is a
//                         no-op, so it may run again. aiokafka cannot: Kafka 4 dropped the
//                         CreateAcls versions it speaks.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public final class KafkaTool {
    static final String USERS_ENV = "AUTOGLM_KAFKA_SCRAM_USERS";

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            fail("usage: KafkaTool format ARGS... | acls CLIENT_PROPS ACL_FILE");
        }
        String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
        switch (argv[0]) {
            case "format" -> format(argv);
            case "acls" -> {
                if (rest.length != 2) {
                    fail("usage: KafkaTool acls CLIENT_PROPS ACL_FILE");
                }
                acls(Path.of(rest[0]), Path.of(rest[1]));
            }
            default -> fail("unknown command '" + argv[0] + "'");
        }
    }

    /** Runs kafka-storage with ``args`` (``format ...``) and the SCRAM users appended. */
    static void format(String[] args) throws Exception {
        List<String> full = new ArrayList<>(Arrays.asList(args));
        String users = System.getenv(USERS_ENV);
        if (users != null) {
            for (String line : users.split("\n")) {
                if (line.isBlank()) {
                    continue;
                }
                String[] parts = line.strip().split(" ", 2);
                if (parts.length != 2) {
                    fail(USERS_ENV + ": expected 'name password' lines");
                }
                full.add("--add-scram");
                full.add("SCRAM-SHA-512=[name=\"" + parts[0] + "\",password=\"" + parts[1] + "\"]");
            }
        }
        kafka.tools.StorageTool.main(full.toArray(new String[0]));
    }

    static void acls(Path clientProps, Path aclFile) throws Exception {
        Properties props = new Properties();
        try (var in = Files.newInputStream(clientProps)) {
            props.load(in);
        }
        List<AclBinding> bindings = new ArrayList<>();
        for (String line : Files.readAllLines(aclFile)) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.strip().split("\\|");
            if (f.length != 5) {
                fail("bad ACL line: " + line);
            }
            bindings.add(new AclBinding(
                    new ResourcePattern(
                            ResourceType.fromString(f[1]), f[3], PatternType.fromString(f[2])),
                    new AccessControlEntry(
                            f[0], "*", AclOperation.fromString(f[4]), AclPermissionType.ALLOW)));
        }
        try (Admin admin = Admin.create(props)) {
            admin.createAcls(bindings).all().get();
        }
        System.out.println("autoglm-kafka-tool: " + bindings.size() + " ACLs in place");
    }

    static void fail(String message) {
        System.err.println("autoglm-kafka-tool: " + message);
        System.exit(2);
    }
}
