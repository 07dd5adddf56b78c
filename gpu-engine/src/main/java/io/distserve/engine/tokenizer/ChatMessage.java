package io.distserve.engine.tokenizer;

/** One message of a chat conversation: role is system, user, assistant (or tool). */
public record ChatMessage(String role, String content) {
}
