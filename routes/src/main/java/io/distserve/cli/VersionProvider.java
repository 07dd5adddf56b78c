package io.distserve.cli;

import picocli.CommandLine.IVersionProvider;

/** The version from the jar's manifest (shade writes the project version there). */
final class VersionProvider implements IVersionProvider {
    @Override
    public String[] getVersion() {
        String v = DistServeCli.class.getPackage().getImplementationVersion();
        return new String[] {"distserve " + (v == null ? "(development build)" : v),
            "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vendor") + ")"};
    }
}
