// Raw identifiers as method, argument and constructor names.

#[ray::actor]
pub struct Lexer {
    kinds: Vec<String>,
}

#[ray::actor]
impl Lexer {
    pub fn r#new(r#match: String) -> Self {
        Lexer {
            kinds: vec![r#match],
        }
    }
    pub fn r#type(&self, r#match: usize) -> String {
        self.kinds[r#match].clone()
    }
    pub fn r#push(&mut self, r#struct: String) -> usize {
        self.kinds.push(r#struct);
        self.kinds.len()
    }
}

fn main() {
    let ray = ray::init(ray::Config::default().local_mode(true)).unwrap();
    let l = Lexer::remote(String::from("ident")).unwrap();
    assert_eq!(l.r#push(String::from("kw")).get_blocking().unwrap(), 2);
    assert_eq!(l.r#type(1).get_blocking().unwrap(), "kw");
    assert_eq!(Lexer::METHODS[0].name, "type");
    assert_eq!(Lexer::METHODS[1].name, "push");
    drop(ray);
}
