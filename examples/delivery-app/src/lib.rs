//! The delivery-app back end from the course: the todos API, the image upload
//! pipeline and the event-sourced orders service, declared once as one [`nube::App`].

/// The whole app: every seed function, one declaration.
pub fn app() -> nube::App {
    let app = nube::App::new("delivery-app").anonymous_http();
    let app = nube_todos::register(app);
    let app = nube_images::register(app);
    nube_orders::register(app)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_declaration_is_valid() {
        let app = super::app();
        app.validate().unwrap();
        let manifest = app.manifest();
        assert_eq!(manifest.app, "delivery-app");
        assert!(manifest.functions.len() >= 6);
    }
}
