/**
 * The CPU reference backend: {@link io.distserve.engine.cpu.CpuBackend} (the model: embedding, decoder layers of
 * {@code Attention} and {@code Mlp}, final norm, LM head), {@link io.distserve.engine.cpu.CpuWeights} (float32
 * weights under Hugging Face names) and {@link io.distserve.engine.cpu.CpuKvCache} (the paged KV pool in direct
 * buffers, in {@link io.distserve.engine.kv.KvCacheLayout}'s byte layout). Plain Java 17, no incubator modules.
 */
package io.distserve.engine.cpu;
