/*
 * A single OpenSearch node for podflow's tests, run from Maven Central's jars.
 *
 * Usage: java -cp CLASSPATH org.podflow.opensearch.TestNode KEY=VALUE...
 *
 * Every argument is a node setting (path.home, path.data, http.port, ...; scripts/opensearch.sh passes
 * them). The modules OpenSearch's distribution would load from its modules/ directory are given to the
 * node as classpath plugins, the way OpenSearch's own test framework (MockNode) does. The node runs until
 * the process gets SIGTERM or SIGINT, then closes (flushing what it holds) and the process exits.
 *
 * With -Dpodflow.watch.pid=PID the node also stops when process PID is gone, so that a test program
 * that dies without stopping its node leaves nothing running.
 */
package org.podflow.opensearch;

import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public final class TestNode {
    /** The modules every test node loads. */
    private static final List<Class<? extends Plugin>> MODULES =
        List.of(Netty4Plugin.class, CommonAnalysisPlugin.class, MapperExtrasPlugin.class, PainlessPlugin.class);

    /** A Node with classpath plugins: the protected constructor is what MockNode uses too. */
    private static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    private TestNode() {}

    /** Exits (closing the node through the shutdown hook) once the process podflow.watch.pid names is gone. */
    private static void watchParent() {
        String watched = System.getProperty("podflow.watch.pid", "");
        if (watched.isEmpty()) {
            return;
        }
        long pid = Long.parseLong(watched);
        Thread watcher = new Thread(() -> {
            while (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    return;
                }
            }
            System.out.println("TestNode: process " + pid + " is gone, stopping");
            System.exit(0);
        }, "podflow-watch-pid");
        watcher.setDaemon(true);
        watcher.start();
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                System.err.println("TestNode: expected KEY=VALUE, got '" + arg + "'");
                System.exit(2);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        String nodeName = Node.NODE_NAME_SETTING.get(settings);
        Environment environment =
            InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), null, () -> nodeName);

        Node node = new EmbeddedNode(environment, MODULES);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                    System.err.println("TestNode: node did not close within 30 s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "podflow-node-shutdown"));

        try {
            node.start();
        } catch (Throwable t) {
            t.printStackTrace();
            // halt: the shutdown hook would wait on a node that never started.
            Runtime.getRuntime().halt(1);
        }
        System.out.println("TestNode: started");
        watchParent();
        // The node's threads are daemons: this thread keeps the process alive until shutdown.
        closed.await();
    }
}
