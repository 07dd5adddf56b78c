package io.distserve.engine.sched;

/**
 * Where a sequence is in its life. WAITING -> RUNNING -> FINISHED; a preempted sequence goes from RUNNING back to
 * WAITING (its blocks freed, its generated tokens kept for recompute). Any state may go to FINISHED (abort).
 */
public enum SequenceStatus {
    WAITING,
    RUNNING,
    FINISHED
}
