package io.msm.tomcat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;

import org.apache.catalina.util.CustomObjectInputStream;

/**
 * Java serialization of attribute values; classes resolve through the web application's class
 * loader. Values reach it only after the native core verified their integrity tag.
 */
public final class JavaSerializer implements AttributeSerializer {
    @Override
    public byte[] serialize(String name, Object value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(value);
        }
        return bytes.toByteArray();
    }

    @Override
    public Object deserialize(String name, byte[] bytes, ClassLoader loader)
            throws IOException, ClassNotFoundException {
        try (ObjectInputStream in =
                new CustomObjectInputStream(new ByteArrayInputStream(bytes), loader)) {
            return in.readObject();
        }
    }
}
