import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.bench.ArrivalSchedule;
import io.distserve.bench.ServingClient;
import io.distserve.bench.ServingReport;
import io.distserve.bench.Slo;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * The benchmark client's own cost, for it/bench/bench_client_overhead.sh: bench serving's client (the same
 * ServingClient) against InstantSseServer, which answers at once. Per configuration: the rate it achieved against the
 * one it was asked for, its TTFT floor (client + loopback), and this process's CPU time per request and per token.
 *
 * <p>{@code java -cp routes/target/distserve.jar it/bench/ClientOverhead.java PORT TOKENS}
 */
public final class ClientOverhead {

    private ClientOverhead() {
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        int tokens = Integer.parseInt(args[1]);
        ObjectMapper json = new ObjectMapper();
        byte[] body = "{\"model\":\"instant\",\"prompt\":[1,2,3,4,5,6,7,8],\"max_tokens\":16,\"stream\":true}"
                .getBytes(StandardCharsets.UTF_8);
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        System.out.printf(Locale.ROOT, "| configuration | requests | asked req/s | achieved req/s | tok/s | TTFT p50 ms "
                + "| TTFT p99 ms | client CPU us/request | client CPU us/token |%n|---|---:|---:|---:|---:|---:|---:|---:|---:|%n");
        Object[][] configs = {{"warm-up", 2000, Double.POSITIVE_INFINITY, 64}, {"open loop", 3000, 100.0, null},
                {"open loop", 3000, 400.0, null}, {"open loop", 5000, 1000.0, null},
                {"closed loop, 64 in flight", 10000, Double.POSITIVE_INFINITY, 64}};
        try (ServingClient c = new ServingClient(URI.create("http://127.0.0.1:" + port), null, 256,
                Duration.ofSeconds(30), json)) {
            for (Object[] cfg : configs) {
                int n = (Integer) cfg[1];
                double rate = (Double) cfg[2];
                Integer cap = (Integer) cfg[3];
                List<byte[]> bodies = Collections.nCopies(n, body);
                long cpu0 = os.getProcessCpuTime();
                ServingClient.Run run = c.run("/v1/completions", bodies, new int[n],
                        ArrivalSchedule.offsets(n, rate, 1, 1), cap, new ServingClient.Progress());
                long cpu = os.getProcessCpuTime() - cpu0;
                ServingReport r = ServingReport.of("/v1/completions", rate, 1, cap, run.outcomes(), run.durationNanos(),
                        Slo.NONE);
                if (r.failed() > 0) {
                    throw new IllegalStateException(r.failed() + " failed: " + r.errors());
                }
                if (cfg[0].equals("warm-up")) {
                    continue;
                }
                System.out.printf(Locale.ROOT, "| %s | %d | %s | %.1f | %.0f | %.2f | %.2f | %.0f | %.1f |%n", cfg[0], n,
                        Double.isInfinite(rate) ? "inf" : String.format(Locale.ROOT, "%.0f", rate),
                        r.requestThroughput(), r.outputThroughput(), r.ttftMs().median(), r.ttftMs().p99(),
                        cpu / 1e3 / n, cpu / 1e3 / n / tokens);
            }
        }
    }
}
