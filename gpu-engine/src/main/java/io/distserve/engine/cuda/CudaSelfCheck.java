package io.distserve.engine.cuda;

import java.util.List;
import java.util.Locale;

/**
 * Runs every {@link CudaChecks} check on device 0 and prints a table (check, shape, rel error, max abs, tolerance,
 * pass/fail, device ms), the kernels' resource usage and the build's ptxas report summary. Exit code 0 when all
 * pass, 1 when any fails, 2 when CUDA is unavailable or a check crashed. Run on the GPU machine by
 * scripts/device/cuda_check.sh; pass {@code -Ddistserve.cuda.sync=true} to synchronize after every launch.
 */
public final class CudaSelfCheck {

    private CudaSelfCheck() {
    }

    public static void main(String[] args) {
        System.out.println("== DistServe CUDA self-check");
        String why = CudaDevice.unavailableReason();
        if (why != null) {
            System.out.println("UNAVAILABLE: " + why);
            System.exit(2);
        }
        int failed;
        try (CudaContext ctx = CudaDevice.open()) {
            long[] mem = ctx.memoryInfo();
            System.out.printf(Locale.ROOT, "device 0: %s, compute capability %s, %d SMs, %d MiB free of %d MiB, "
                            + "max shared/block (opt-in) %d bytes%n", ctx.deviceName(), ctx.computeCapability(),
                    ctx.smCount(), mem[0] >> 20, mem[1] >> 20, ctx.maxSharedPerBlockOptin());
            CudaKernels kernels = new CudaKernels(ctx);
            System.out.println("wgmma GEMM (gemm_wgmma.cu): " + (kernels.wgmmaAvailable()
                    ? "on (prefill-sized products; -Ddistserve.cuda.wgmma=false turns it off)"
                    : "off: " + kernels.wgmmaUnavailableReason()));
            System.out.println();
            System.out.println("kernel                     regs  static smem  local (spill) bytes");
            for (Kernel k : kernels.all()) {
                System.out.printf(Locale.ROOT, "%-26s %4d  %11d  %d%n", k.name(), k.registers(),
                        k.attribute(jcuda.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES),
                        k.attribute(jcuda.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES));
            }
            System.out.println("split GEMM (M " + CudaKernels.SPLIT_MIN_M + ".." + CudaKernels.SPLIT_MAX_M + "): "
                    + (kernels.clusterRefusal() == null ? "cluster launches work (K split across up to 8 blocks)"
                    : "cluster launch REFUSED, K not split: " + kernels.clusterRefusal())
                    + "; required cluster width of gemm_split32_s1/s2/s4/s8: " + safeWidths(kernels));
            System.out.println("decode GEMM M 1 / 2..8 / 9..16 / 17..32: the tuner's pick per bucket and weight shape "
                    + "(rows \"gemm1/gemm8/gemm16/gemm32 tuner\"); -Ddistserve.cuda.gemm1|gemm8|gemm16|gemm32="
                    + "skinny[:W]|dual|split[:S]|pipe[:S] forces one" + (kernels.forcedDecode() != null
                    ? "; FORCED: " + kernels.forcedDecode() : ""));
            System.out.println();
            String header = String.format(Locale.ROOT, "%-44s %-58s %10s %10s %8s %5s %9s  %s", "check", "shape",
                    "rel err", "max abs", "tol", "ok", "ms", "note");
            System.out.println(header);
            CudaChecks checks = new CudaChecks(kernels, System.nanoTime(), r -> System.out.println(row(r)));
            try {
                checks.runAll();
            } catch (RuntimeException e) {
                System.out.println("CRASH: " + e);
                e.printStackTrace(System.out);
                System.exit(2);
            }
            List<CudaChecks.Result> results = checks.results();
            failed = (int) results.stream().filter(r -> !r.passed()).count();
            System.out.println();
            System.out.println(failed == 0 ? "ALL " + results.size() + " CHECKS PASSED"
                    : failed + " OF " + results.size() + " CHECKS FAILED");
        }
        String report = CudaDevice.ptxasReport();
        if (report != null) {
            System.out.println();
            System.out.println("ptxas resource report of this build (sm_90a):");
            String fn = null;
            for (String line : report.split("\n")) {
                if (line.contains("Compiling entry function")) {
                    int a = line.indexOf('\'');
                    fn = a >= 0 ? line.substring(a + 1, line.lastIndexOf('\'')) : line;
                    if (line.contains("sm_90a")) {
                        fn = fn + " ";
                    } else {
                        fn = null;
                    }
                } else if (fn != null && (line.contains("Used") || line.contains("spill"))) {
                    System.out.printf(Locale.ROOT, "  %-24s %s%n", fn.trim(), line.replace("ptxas info    :", "").trim());
                }
            }
        }
        System.exit(failed == 0 ? 0 : 1);
    }

    private static String safeWidths(CudaKernels kernels) {
        try {
            return kernels.splitClusterWidths();
        } catch (RuntimeException e) {
            return "? (" + e.getMessage() + ")";
        }
    }

    private static String row(CudaChecks.Result r) {
        return String.format(Locale.ROOT, "%-44s %-58s %10.2e %10.2e %8.0e %5s %9.3f  %s", r.check(), r.shape(),
                r.relError(), r.maxAbs(), r.tolerance(), r.passed() ? "PASS" : "FAIL", r.millis(),
                r.note() == null ? "" : r.note());
    }
}
