package io.distserve.processors.openai;

/**
 * A failure that the client sees as an OpenAI error body with this HTTP status:
 * {@code {"error":{"message","type","param","code"}}}.
 */
public class OpenAiException extends RuntimeException {

    private final int status;
    private final String type;
    private final String param;
    private final String code;

    public OpenAiException(int status, String type, String param, String code, String message) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400 invalid_request_error about one request field. */
    public static OpenAiException badRequest(String param, String message) {
        return new OpenAiException(400, "invalid_request_error", param, null, message);
    }

    public static OpenAiException notFound(String message) {
        return new OpenAiException(404, "invalid_request_error", null, "not_found", message);
    }

    /**
     * 404 model_not_found (param "model"): what OpenAI, vLLM and LMDeploy answer for a model they do not serve, and
     * what the OpenAI SDKs turn into a NotFoundError. Engines and the proxy answer it alike.
     */
    public static OpenAiException modelNotFound(String model, String detail) {
        return new OpenAiException(404, "invalid_request_error", "model", "model_not_found",
                "The model '" + model + "' does not exist" + (detail == null ? "." : "; " + detail));
    }

    public static OpenAiException unauthorized() {
        return new OpenAiException(401, "invalid_request_error", null, "invalid_api_key",
                "Incorrect or missing API key: send 'Authorization: Bearer <key>'.");
    }

    public static OpenAiException overloaded(String message) {
        return new OpenAiException(429, "rate_limit_error", null, "queue_full", message);
    }

    public static OpenAiException unavailable(String message) {
        return new OpenAiException(503, "service_unavailable", null, "service_unavailable", message);
    }

    public static OpenAiException internal(String message) {
        return new OpenAiException(500, "internal_error", null, "internal_error", message);
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public String param() {
        return param;
    }

    public String code() {
        return code;
    }
}
