package io.distserve.bench;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.CategoryAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.CombinedDomainCategoryPlot;
import org.jfree.chart.renderer.category.LineAndShapeRenderer;
import org.jfree.data.category.DefaultCategoryDataset;

/**
 * The rate sweep as a PNG (JFreeChart, rendered headless): goodput, p99 TTFT and p99 TPOT against the request
 * rate, one line per sweep (this one and any compared with it), the rates as categories (so "inf" has a place).
 */
public final class SweepPlot {

    /** One labelled sweep: its reports in rate order. */
    public record Series(String label, List<ServingReport> runs) {
    }

    private SweepPlot() {
    }

    public static void write(List<Series> sweeps, String title, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        DefaultCategoryDataset goodput = new DefaultCategoryDataset();
        DefaultCategoryDataset ttft = new DefaultCategoryDataset();
        DefaultCategoryDataset tpot = new DefaultCategoryDataset();
        boolean anyGoodput = sweeps.stream().flatMap(s -> s.runs().stream()).anyMatch(r -> r.goodput() != null);
        for (Series s : sweeps) {
            for (ServingReport r : s.runs()) {
                String rate = ServingBenchmark.rateText(r.requestRate());
                // goodput when any sweep had SLOs (a sweep without them has no point there), else throughput
                goodput.addValue(anyGoodput ? r.goodput() : Double.valueOf(r.requestThroughput()), s.label(), rate);
                ttft.addValue(nanToNull(r.ttftMs().p99()), s.label(), rate);
                tpot.addValue(nanToNull(r.tpotMs().p99()), s.label(), rate);
            }
        }
        CombinedDomainCategoryPlot plot = new CombinedDomainCategoryPlot(new CategoryAxis("request rate (req/s)"));
        CategoryPlot top = subplot(goodput, anyGoodput ? "goodput (req/s)" : "throughput (req/s)");
        plot.add(top, 1);
        plot.add(subplot(ttft, "p99 TTFT (ms)"), 1);
        plot.add(subplot(tpot, "p99 TPOT (ms)"), 1);
        plot.setFixedLegendItems(top.getLegendItems()); // one legend: a sweep has the same colour in every panel
        JFreeChart chart = new JFreeChart(title, new Font(Font.SANS_SERIF, Font.BOLD, 14), plot, true);
        chart.setBackgroundPaint(Color.WHITE);
        ChartUtils.saveChartAsPNG(png.toFile(), chart, 800, 900);
    }

    private static Number nanToNull(double v) {
        return Double.isNaN(v) ? null : v;
    }

    private static final Color[] PALETTE = {new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c),
            new Color(0xff7f0e), new Color(0x9467bd), new Color(0x8c564b)};

    private static CategoryPlot subplot(DefaultCategoryDataset data, String yLabel) {
        LineAndShapeRenderer r = new LineAndShapeRenderer(true, true);
        for (int i = 0; i < data.getRowCount(); i++) {
            r.setSeriesStroke(i, new BasicStroke(2f));
            r.setSeriesPaint(i, PALETTE[i % PALETTE.length]);
        }
        NumberAxis y = new NumberAxis(yLabel);
        y.setAutoRangeIncludesZero(true);
        CategoryPlot p = new CategoryPlot(data, null, y, r);
        p.setBackgroundPaint(Color.WHITE);
        p.setRangeGridlinePaint(Color.LIGHT_GRAY);
        return p;
    }
}
