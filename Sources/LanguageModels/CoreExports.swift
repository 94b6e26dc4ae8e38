// The model layer's API speaks the core's types (ChatMessage in chat templates and backends,
// JSONLines in generation jobs), so a program that imports LanguageModels gets them too.
@_exported public import ValueAlignCore
