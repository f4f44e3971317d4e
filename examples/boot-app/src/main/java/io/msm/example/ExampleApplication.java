package io.msm.example;

import jakarta.servlet.http.HttpSession;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.security.config.Customizer;
import org.springframework.security.config.annotation.web.builders.HttpSecurity;
import org.springframework.security.core.userdetails.User;
import org.springframework.security.core.userdetails.UserDetailsService;
import org.springframework.security.provisioning.InMemoryUserDetailsManager;
import org.springframework.security.web.SecurityFilterChain;
import org.springframework.security.web.csrf.CsrfToken;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

import java.security.Principal;

/**
 * A Spring Boot application behind Spring Security's form login, whose sessions msm keeps in
 * memcached (the starter, configured in {@code application.properties}): a user logged in on
 * one instance is logged in on every instance, and logging out on one ends it everywhere.
 */
@SpringBootApplication
@RestController
public class ExampleApplication {
    /**
     * Starts the application.
     *
     * @param args Spring Boot's arguments ({@code --server.port=...}, {@code --msm.*=...})
     */
    public static void main(String[] args) {
        SpringApplication.run(ExampleApplication.class, args);
    }

    /**
     * Every page needs a login; Spring Security's own login page and logout.
     *
     * @param http Spring Security's builder
     * @return the filter chain
     * @throws Exception when Spring Security refuses the configuration
     */
    @Bean
    public SecurityFilterChain security(HttpSecurity http) throws Exception {
        return http.authorizeHttpRequests(requests -> requests.anyRequest().authenticated())
                .formLogin(Customizer.withDefaults())
                .logout(Customizer.withDefaults())
                .build();
    }

    /**
     * The one user, alice (password s3cret).
     *
     * @return the users
     */
    @Bean
    public UserDetailsService users() {
        return new InMemoryUserDetailsManager(
                User.withUsername("alice").password("{noop}s3cret").roles("USER").build());
    }

    /**
     * The logged-in user's page: a visit counter kept in the session, and the CSRF token a form
     * (logout) needs.
     *
     * @param principal the logged-in user
     * @param session the session
     * @param csrf the session's CSRF token
     * @return one line of {@code key=value} pairs
     */
    @GetMapping("/")
    public String home(Principal principal, HttpSession session, CsrfToken csrf) {
        Integer visits = (Integer) session.getAttribute("visits");
        visits = visits == null ? 1 : visits + 1;
        session.setAttribute("visits", visits);
        return "user=" + principal.getName() + " visits=" + visits + " csrf=" + csrf.getToken()
                + " runtime=" + Runtime.version().feature() + " thread="
                + (Thread.currentThread().toString().startsWith("VirtualThread") ? "virtual" : "platform") + "\n";
    }
}
