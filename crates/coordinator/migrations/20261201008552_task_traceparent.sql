-- The W3C traceparent of the delivery that made the attempt ready: the dispatcher publishes the
-- assignment later, outside that delivery's span, and continues this trace (NULL: none was sent).
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
