package io.msm.demo.extra;

import java.io.Serializable;

/**
 * A session attribute value whose class only some Tomcats have: the tests give its jar
 * ({@code msm-demo-extra.jar}) to one Tomcat's web application and not to another's, as a
 * redeploy that removed a class would. The demo's {@code /extra} stores one.
 */
public final class ExtraValue implements Serializable {
    private static final long serialVersionUID = 1L;

    @Override
    public String toString() {
        return "extra";
    }
}
