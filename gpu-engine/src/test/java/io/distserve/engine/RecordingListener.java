package io.distserve.engine;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** Records a request's callbacks and checks the listener contract (tokens, then exactly one terminal call). */
final class RecordingListener implements GenerationListener {

    final List<TokenEvent> tokens = new CopyOnWriteArrayList<>();
    final List<String> violations = new CopyOnWriteArrayList<>();
    final CountDownLatch firstToken = new CountDownLatch(1);
    final CountDownLatch done = new CountDownLatch(1);
    volatile FinishEvent finish;
    volatile Throwable error;
    /** Tokens of an answer that resumed: its first event's index is theirs (they count as generated). */
    volatile int resumed;

    @Override
    public void onToken(TokenEvent event) {
        if (done.getCount() == 0) {
            violations.add("token after the end: " + event);
        }
        if (event.index() != resumed + tokens.size()) {
            violations.add("index " + event.index() + " after " + resumed + " resumed and " + tokens.size()
                    + " tokens");
        }
        tokens.add(event);
        firstToken.countDown();
    }

    @Override
    public void onFinish(FinishEvent event) {
        terminal();
        finish = event;
        done.countDown();
    }

    @Override
    public void onError(Throwable e) {
        terminal();
        error = e;
        done.countDown();
    }

    private void terminal() {
        if (done.getCount() == 0) {
            violations.add("second terminal callback");
        }
    }

    FinishEvent awaitFinish() throws InterruptedException {
        if (!done.await(20, TimeUnit.SECONDS)) {
            throw new AssertionError("request did not end");
        }
        if (finish == null) {
            throw new AssertionError("request failed", error);
        }
        return finish;
    }

    Throwable awaitError() throws InterruptedException {
        if (!done.await(20, TimeUnit.SECONDS)) {
            throw new AssertionError("request did not end");
        }
        if (error == null) {
            throw new AssertionError("request did not fail: " + finish);
        }
        return error;
    }

    void awaitFirstToken() throws InterruptedException {
        if (!firstToken.await(20, TimeUnit.SECONDS)) {
            throw new AssertionError("no token");
        }
    }

    String streamedText() {
        StringBuilder sb = new StringBuilder();
        tokens.forEach(t -> sb.append(t.textDelta()));
        return sb.toString();
    }

    int[] streamedIds() {
        return tokens.stream().mapToInt(TokenEvent::tokenId).toArray();
    }
}
