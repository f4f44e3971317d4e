package io.msm.tomcat;

import java.io.IOException;

/**
 * Turns session attribute values into bytes and back. The default is {@link JavaSerializer};
 * another is chosen with the manager's {@code serializer} attribute (a class with a public
 * no-argument constructor).
 */
public interface AttributeSerializer {
    /**
     * Serializes one attribute value.
     *
     * @param name the attribute name, for error messages
     * @param value the value
     * @return its bytes
     * @throws IOException when the value cannot be serialized
     */
    byte[] serialize(String name, Object value) throws IOException;

    /**
     * Restores one attribute value.
     *
     * @param name the attribute name, for error messages
     * @param bytes what {@link #serialize} produced
     * @param loader the web application's class loader
     * @return the value
     * @throws IOException when the bytes do not read
     * @throws ClassNotFoundException when a class of the value is missing
     */
    Object deserialize(String name, byte[] bytes, ClassLoader loader)
            throws IOException, ClassNotFoundException;
}
